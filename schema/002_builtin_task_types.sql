-- The 50 built-in task types over eight categories, each with the minutes a
-- trained person typically needs for one unit of the work.
--
-- Every baseline is an estimate, not a measurement, and its source_note
-- states what the estimate assumes. Organisations on Pro and higher replace a baseline with
-- an override in org_task_types.

INSERT INTO task_types (key, display_name, category, baseline_minutes,
                        source_note)
VALUES

-- support (7)
('email_classification', 'Email classification', 'support', 4,
 'estimate: typical time for a trained support agent to read one inbound email and tag its category'),
('ticket_routing', 'Ticket routing', 'support', 3,
 'estimate: time for a support agent to read a ticket and assign it to the right queue or team'),
('ticket_reply_draft', 'Ticket reply draft', 'support', 10,
 'estimate: time to write a first reply to a routine ticket using the knowledge base'),
('ticket_summary', 'Ticket summary', 'support', 5,
 'estimate: time to read a ticket thread of about ten messages and write a short handover summary'),
('sentiment_tagging', 'Sentiment tagging', 'support', 2,
 'estimate: time to read one customer message and mark its sentiment and urgency'),
('faq_answer', 'FAQ answer', 'support', 6,
 'estimate: time to find the matching help-centre article and adapt its answer to one question'),
('refund_request_triage', 'Refund request triage', 'support', 8,
 'estimate: time to check an order against the refund policy and decide approve, reject or escalate'),

-- ops (6)
('incident_report_draft', 'Incident report draft', 'ops', 25,
 'estimate: time to collect the timeline from chat and alerts and write a first incident report'),
('purchase_order_creation', 'Purchase order creation', 'ops', 12,
 'estimate: time to turn an approved request into a purchase order in the procurement system'),
('expense_report_review', 'Expense report review', 'ops', 8,
 'estimate: time for a finance clerk to check one expense report of about five receipts against policy'),
('inventory_reconciliation', 'Inventory reconciliation', 'ops', 45,
 'estimate: time to compare one stock count with the system records and explain the differences'),
('vendor_onboarding_check', 'Vendor onboarding check', 'ops', 20,
 'estimate: time to verify a new vendor''s registration, bank details and tax documents'),
('shift_schedule_draft', 'Shift schedule draft', 'ops', 30,
 'estimate: time to draft one week of shifts for a team of about ten from availability lists'),

-- sales (6)
('lead_qualification', 'Lead qualification', 'sales', 10,
 'estimate: time for a sales development rep to research one inbound lead and score it against the ideal customer profile'),
('lead_enrichment', 'Lead enrichment', 'sales', 8,
 'estimate: time to look up company size, industry and role for one contact and fill the CRM fields'),
('crm_data_entry', 'CRM data entry', 'sales', 5,
 'estimate: time to enter one contact or deal update into the CRM from an email or form'),
('outreach_email_draft', 'Outreach email draft', 'sales', 12,
 'estimate: time to write one personalised first-touch email after a short look at the prospect'),
('call_notes_to_crm', 'Call notes to CRM', 'sales', 10,
 'estimate: time to turn the notes of a 30-minute sales call into a structured CRM entry with next steps'),
('proposal_first_draft', 'Proposal first draft', 'sales', 90,
 'estimate: time to assemble a first proposal draft from a template, the discovery notes and the price list'),

-- legal (6)
('nda_review', 'NDA review', 'legal', 30,
 'estimate: time for a paralegal to check a standard two-to-four-page NDA against the playbook'),
('contract_clause_extraction', 'Contract clause extraction', 'legal', 25,
 'estimate: time to find and copy the key clauses (term, renewal, liability, termination) from a 20-page contract'),
('contract_summary', 'Contract summary', 'legal', 45,
 'estimate: time to read a 20-page commercial contract and write a one-page summary'),
('compliance_check', 'Compliance check', 'legal', 20,
 'estimate: time to check one document or process description against a checklist of about 20 items'),
('data_subject_request', 'Data subject request', 'legal', 60,
 'estimate: time to verify identity, collect the records and answer one GDPR access request'),
('legal_research_memo', 'Legal research memo', 'legal', 120,
 'estimate: time for a junior associate to research one narrow question and write a short memo'),

-- content (6)
('meeting_summary_30min', 'Meeting summary (30 minutes)', 'content', 15,
 'estimate: time to turn the recording or notes of a 30-minute meeting into a summary with decisions and action items'),
('blog_post_draft', 'Blog post draft', 'content', 120,
 'estimate: time for a content writer to research and draft a blog post of about 1000 words'),
('social_post_draft', 'Social post draft', 'content', 15,
 'estimate: time to write one social media post with a short variant per channel'),
('product_description', 'Product description', 'content', 15,
 'estimate: time to write a 150-word product description from a specification sheet'),
('translation_500_words', 'Translation (500 words)', 'content', 60,
 'estimate: time for a professional translator to translate 500 words of business text, at about 2500 words a day'),
('proofreading_1000_words', 'Proofreading (1000 words)', 'content', 20,
 'estimate: time for an editor to proofread 1000 words for spelling, grammar and consistency'),

-- research (6)
('web_research_brief', 'Web research brief', 'research', 45,
 'estimate: time to search the web on one question and write a sourced one-page brief'),
('competitor_profile', 'Competitor profile', 'research', 90,
 'estimate: time for an analyst to compile one competitor''s products, prices and positioning from public sources'),
('literature_search', 'Literature search', 'research', 60,
 'estimate: time to search databases on one topic and shortlist about ten relevant papers with abstracts'),
('market_sizing_estimate', 'Market sizing estimate', 'research', 120,
 'estimate: time for an analyst to build a first top-down and bottom-up market size from public data'),
('company_background_check', 'Company background check', 'research', 20,
 'estimate: time to look up one company''s registry entry, ownership and recent news'),
('fact_check', 'Fact check', 'research', 10,
 'estimate: time to verify one factual claim against two independent sources'),

-- data (7)
('invoice_data_extraction', 'Invoice data extraction', 'data', 6,
 'estimate: time for an accounts-payable clerk to key in the header fields and line items of one invoice'),
('receipt_data_extraction', 'Receipt data extraction', 'data', 3,
 'estimate: time to key in merchant, date, amount and tax of one receipt'),
('form_data_entry', 'Form data entry', 'data', 5,
 'estimate: time to transfer one filled-in paper or PDF form of about 20 fields into a system'),
('pdf_table_extraction', 'PDF table extraction', 'data', 15,
 'estimate: time to copy one page-long table from a PDF into a spreadsheet and check it'),
('spreadsheet_cleanup', 'Spreadsheet cleanup', 'data', 30,
 'estimate: time to normalise formats, fix obvious errors and remove blanks in a sheet of a few hundred rows'),
('record_deduplication', 'Record deduplication', 'data', 20,
 'estimate: time to find and merge duplicate records in a list of a few hundred contacts'),
('report_generation', 'Report generation', 'data', 60,
 'estimate: time for an analyst to pull the figures for a routine weekly report and write its commentary'),

-- dev (6)
('code_review_small_pr', 'Code review (small pull request)', 'dev', 20,
 'estimate: time for a developer to review a pull request of under 200 changed lines'),
('unit_test_writing', 'Unit test writing', 'dev', 30,
 'estimate: time to write unit tests for one function or small module, edge cases included'),
('bug_triage', 'Bug triage', 'dev', 15,
 'estimate: time to reproduce one bug report, label it and assign it to an owner'),
('documentation_update', 'Documentation update', 'dev', 25,
 'estimate: time to update the reference documentation for one changed feature'),
('sql_query_writing', 'SQL query writing', 'dev', 15,
 'estimate: time for a developer to write and check one reporting query over a few joined tables'),
('log_analysis', 'Log analysis', 'dev', 30,
 'estimate: time to search the logs around one incident and identify the failing component');
