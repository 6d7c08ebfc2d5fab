/*
 * humanhours-admin prices: loads the model price book from a CSV file,
 * replacing the whole book in one transaction, and lists it. The load
 * rewrites hh:prices in Redis right after that transaction, so the edge
 * computes the next agent cost with the new prices.
 */

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "hhw_buf.h"
#include "hhw_mirror.h"
#include "hhw_pg.h"


/* The bound that the edge applies to model and the schema to the column. */
#define ADMIN_PRICES_MODEL_MAX   128

/* Bad rows reported one by one; the rest are only counted. */
#define ADMIN_PRICES_REPORT_MAX  20

/* A price book of some thousand models is well below this. */
#define ADMIN_PRICES_FILE_MAX    (64 * 1024 * 1024)

#define ADMIN_PRICES_HEADER  "model,input_per_million,output_per_million"


typedef struct {
    const char     *data;
    size_t          len;
} admin_field_t;


typedef struct {
    admin_field_t   model;
    admin_field_t   input;
    admin_field_t   output;
    unsigned long   line;
} admin_price_t;


typedef struct {
    admin_t        *admin;
    const char     *path;
    unsigned long   errors;
} admin_prices_load_t;


static void admin_prices_load(admin_t *admin, int argc, char **argv);
static void admin_prices_list(admin_t *admin, int argc, char **argv);
static void admin_prices_read(admin_t *admin, const char *path,
    hhw_buf_t *text);
static size_t admin_prices_parse(admin_prices_load_t *load, char *text,
    size_t len, admin_price_t **prices);
static int admin_prices_record(admin_prices_load_t *load, char **p,
    char *end, unsigned long line, admin_field_t *fields, size_t *nfields);
static void admin_prices_check(admin_prices_load_t *load,
    admin_price_t *price);
static void admin_prices_find_duplicates(admin_prices_load_t *load,
    admin_price_t *prices, size_t n);
static int admin_prices_by_model(const void *one, const void *two);
static void admin_prices_error(admin_prices_load_t *load,
    unsigned long line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void admin_prices_append_array(hhw_buf_t *buf, admin_price_t *prices,
    size_t n, size_t offset);


static const admin_command_t  admin_prices_subcommands[] = {
    { "load", admin_prices_load },
    { "list", admin_prices_list },
    { NULL, NULL }
};


void
admin_prices(admin_t *admin, int argc, char **argv)
{
    admin_run_subcommand(admin, "prices", admin_prices_subcommands,
                         "\"load\" or \"list\"", argc, argv);
}


/*
 * The whole file is checked before Postgres is touched, and every bad row
 * is reported, so one run shows all that needs fixing. A file with the
 * header alone empties the book.
 */
static void
admin_prices_load(admin_t *admin, int argc, char **argv)
{
    size_t                n;
    PGconn               *pg;
    PGresult             *res;
    hhw_buf_t             text, arrays[3];
    const char           *params[3];
    hhw_error_t           err;
    admin_price_t        *prices;
    hhw_mirror_prices_t   book;
    admin_prices_load_t   load;

    static const char  command[] = "prices load";

    if (argc == 2 && strcmp(argv[1], "--help") == 0) {
        admin_usage(admin, 1);
    }

    if (argc != 2) {
        admin_fail(admin, "%s: expected one CSV file", command);
    }

    load.admin = admin;
    load.path = argv[1];
    load.errors = 0;

    hhw_buf_init(&text);
    admin_prices_read(admin, load.path, &text);

    n = admin_prices_parse(&load, text.data, text.len, &prices);

    if (load.errors > ADMIN_PRICES_REPORT_MAX) {
        fprintf(stderr, "humanhours-admin: %s: %s: %lu more bad rows not "
                "shown\n", command, load.path,
                load.errors - ADMIN_PRICES_REPORT_MAX);
    }

    if (load.errors > 0) {
        admin_fail(admin, "%s: %s has %lu bad rows, so the price book was "
                   "not changed", command, load.path, load.errors);
    }

    hhw_buf_init(&arrays[0]);
    hhw_buf_init(&arrays[1]);
    hhw_buf_init(&arrays[2]);

    admin_prices_append_array(&arrays[0], prices, n,
                              offsetof(admin_price_t, model));
    admin_prices_append_array(&arrays[1], prices, n,
                              offsetof(admin_price_t, input));
    admin_prices_append_array(&arrays[2], prices, n,
                              offsetof(admin_price_t, output));

    if (arrays[0].failed || arrays[1].failed || arrays[2].failed) {
        admin_fail(admin, "%s: out of memory", command);
    }

    params[0] = arrays[0].data;
    params[1] = arrays[1].data;
    params[2] = arrays[2].data;

    /* Both connections first, so that a down server changes nothing. */
    pg = admin_pg(admin);
    admin_redis(admin);

    if (hhw_pg_exec(pg, "BEGIN", &err) != 0) {
        admin_fail(admin, "%s: BEGIN failed: %s", command, err.text);
    }

    /*
     * The new revision keeps an older sync from writing the old book over
     * the new one in Redis. Its row lock makes loads run one after the
     * other, while readers such as the writer's sync are not blocked.
     */
    if (hhw_pg_exec(pg, "UPDATE price_book SET revision = revision + 1;"
                        " DELETE FROM model_prices", &err)
        != 0)
    {
        admin_fail(admin, "%s: emptying the price book failed: %s", command,
                   err.text);
    }

    res = hhw_pg_query(pg,
                       "INSERT INTO model_prices"
                       " (model, input_per_million, output_per_million)"
                       " SELECT * FROM unnest($1::text[], $2::numeric[],"
                       " $3::numeric[])",
                       3, params, &err);
    if (res == NULL) {
        admin_fail(admin, "%s: storing the prices failed, so the price book "
                   "was not changed: %s", command, err.text);
    }

    PQclear(res);

    if (hhw_mirror_prices_read(pg, &book, &err) != 0) {
        admin_fail(admin, "%s: reading the price book back failed, so it "
                   "was not changed: %s", command, err.text);
    }

    admin_commit(admin, command);

    if (hhw_mirror_prices_write(admin->redis, &book, &err) != 0) {
        admin_fail(admin, "%s: the price book is stored, but writing "
                   "hh:prices to Redis failed, so the edge uses it only "
                   "after a writer syncs: %s", command, err.text);
    }

    hhw_mirror_prices_free(&book);

    printf("%zu\n", n);

    free(prices);
    hhw_buf_free(&arrays[0]);
    hhw_buf_free(&arrays[1]);
    hhw_buf_free(&arrays[2]);
    hhw_buf_free(&text);
}


static void
admin_prices_list(admin_t *admin, int argc, char **argv)
{
    PGresult     *res;
    hhw_error_t   err;

    if (argc > 1) {
        if (strcmp(argv[1], "--help") == 0) {
            admin_usage(admin, 1);
        }

        admin_fail(admin, "prices list: unexpected argument \"%s\"",
                   argv[1]);
    }

    res = hhw_pg_query(admin_pg(admin),
                       "SELECT model, input_per_million, output_per_million"
                       " FROM model_prices ORDER BY model",
                       0, NULL, &err);
    if (res == NULL) {
        admin_fail(admin, "prices list: %s", err.text);
    }

    printf("model\tinput_per_million\toutput_per_million\n");

    admin_print_rows(res, 3);

    PQclear(res);
}


static void
admin_prices_read(admin_t *admin, const char *path, hhw_buf_t *text)
{
    FILE    *file;
    char     chunk[8192];
    size_t   n;

    file = fopen(path, "rb");
    if (file == NULL) {
        admin_fail(admin, "prices load: cannot open %s: %s", path,
                   strerror(errno));
    }

    while ((n = fread(chunk, 1, sizeof(chunk), file)) > 0) {
        hhw_buf_append(text, chunk, n);

        if (text->len > ADMIN_PRICES_FILE_MAX) {
            admin_fail(admin, "prices load: %s is larger than %d MiB", path,
                       ADMIN_PRICES_FILE_MAX / 1024 / 1024);
        }
    }

    if (ferror(file)) {
        admin_fail(admin, "prices load: cannot read %s: %s", path,
                   strerror(errno));
    }

    fclose(file);

    hhw_buf_append(text, "", 0);

    if (text->failed) {
        admin_fail(admin, "prices load: out of memory reading %s", path);
    }
}


/*
 * Splits the file into price rows after the header line, checking each.
 * The format is RFC 4180 CSV: fields separated by commas, lines ended by
 * LF or CRLF, and a field in double quotes may contain commas and "" for
 * one quote, but no line break. Blank lines and a UTF-8 byte order mark
 * are skipped, and so are spaces around unquoted fields. Returns the
 * number of rows, with load->errors counting the bad ones.
 */
static size_t
admin_prices_parse(admin_prices_load_t *load, char *text, size_t len,
    admin_price_t **prices)
{
    int             header, rc;
    char           *p, *end;
    size_t          n, nalloc, nfields;
    unsigned long   line;
    admin_field_t   fields[4];
    admin_price_t  *price;

    p = text;
    end = text + len;

    if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) {
        p += 3;
    }

    nalloc = 16;
    n = 0;
    *prices = malloc(nalloc * sizeof(admin_price_t));
    if (*prices == NULL) {
        admin_fail(load->admin, "prices load: out of memory");
    }

    header = 0;

    for (line = 1; p < end; line++) {

        if (*p == '\n' || (*p == '\r' && p + 1 < end && p[1] == '\n')) {
            p += (*p == '\r') ? 2 : 1;
            continue;
        }

        rc = admin_prices_record(load, &p, end, line, fields, &nfields);

        if (!header) {
            header = 1;

            if (rc == 0
                && (nfields != 3
                || fields[0].len != sizeof("model") - 1
                || memcmp(fields[0].data, "model", fields[0].len) != 0
                || fields[1].len != sizeof("input_per_million") - 1
                || memcmp(fields[1].data, "input_per_million",
                          fields[1].len) != 0
                || fields[2].len != sizeof("output_per_million") - 1
                || memcmp(fields[2].data, "output_per_million",
                          fields[2].len) != 0))
            {
                admin_prices_error(load, line, "expected the header line "
                                   ADMIN_PRICES_HEADER);
            }

            continue;
        }

        if (rc != 0) {
            continue;
        }

        if (nfields != 3) {
            admin_prices_error(load, line, "expected 3 fields (model, "
                               "input_per_million, output_per_million), "
                               "found %s%zu", nfields > 3 ? "at least " : "",
                               nfields);
            continue;
        }

        if (n == nalloc) {
            nalloc *= 2;
            price = realloc(*prices, nalloc * sizeof(admin_price_t));

            if (price == NULL) {
                admin_fail(load->admin, "prices load: out of memory");
            }

            *prices = price;
        }

        price = &(*prices)[n++];
        price->model = fields[0];
        price->input = fields[1];
        price->output = fields[2];
        price->line = line;

        admin_prices_check(load, price);
    }

    if (!header) {
        admin_prices_error(load, 1, "the file is empty; expected the header "
                           "line " ADMIN_PRICES_HEADER);
    }

    admin_prices_find_duplicates(load, *prices, n);

    return n;
}


/*
 * Reads the record that starts at *p into fields, at most four of them, and
 * moves *p past its line end. Quoted fields are unquoted in place, which
 * only ever shortens them. Returns 0, or -1 after reporting a malformed
 * record.
 */
static int
admin_prices_record(admin_prices_load_t *load, char **p, char *end,
    unsigned long line, admin_field_t *fields, size_t *nfields)
{
    int    quoted;
    char  *s, *d, *start, *last;

    s = *p;
    *nfields = 0;

    for ( ;; ) {

        while (s < end && (*s == ' ' || *s == '\t')) {
            s++;
        }

        quoted = s < end && *s == '"';

        if (quoted) {
            start = ++s;
            d = s;

            for ( ;; ) {
                if (s == end || *s == '\n' || *s == '\r') {
                    admin_prices_error(load, line, "a quoted field is not "
                                       "closed on its line");
                    goto skip;
                }

                if (*s == '"') {
                    if (s + 1 < end && s[1] == '"') {
                        *d++ = '"';
                        s += 2;
                        continue;
                    }

                    s++;
                    break;
                }

                *d++ = *s++;
            }

            last = d;

            while (s < end && (*s == ' ' || *s == '\t')) {
                s++;
            }

        } else {
            start = s;

            while (s < end && *s != ',' && *s != '\n' && *s != '\r') {
                if (*s == '"') {
                    admin_prices_error(load, line, "a double quote inside a "
                                       "field that does not start with "
                                       "one");
                    goto skip;
                }

                s++;
            }

            last = s;

            while (last > start && (last[-1] == ' ' || last[-1] == '\t')) {
                last--;
            }
        }

        if (*nfields < 4) {
            fields[*nfields].data = start;
            fields[*nfields].len = last - start;
            (*nfields)++;
        }

        if (s < end && *s == ',') {
            s++;
            continue;
        }

        if (s == end || *s == '\n' || (*s == '\r' && s + 1 < end
                                       && s[1] == '\n'))
        {
            break;
        }

        admin_prices_error(load, line, "unexpected text after a quoted "
                           "field, or a carriage return without a line "
                           "feed");
        goto skip;
    }

    *p = (s < end && *s == '\r') ? s + 2 : (s < end ? s + 1 : s);

    return 0;

skip:

    while (s < end && *s != '\n') {
        s++;
    }

    *p = (s < end) ? s + 1 : s;

    return -1;
}


static void
admin_prices_check(admin_prices_load_t *load, admin_price_t *price)
{
    const char  *problem;

    problem = admin_text_problem(price->model.data, price->model.len,
                                 ADMIN_PRICES_MODEL_MAX);

    if (problem != NULL) {
        admin_prices_error(load, price->line, "model %s (at most %d "
                           "characters, no control characters)", problem,
                           ADMIN_PRICES_MODEL_MAX);
    }

    if (!admin_is_decimal(price->input.data, price->input.len, 0)) {
        admin_prices_error(load, price->line, "input_per_million \"%.*s\" "
                           "is not a decimal number from 0 and below 1e15 "
                           "such as 3 or 0.15",
                           (int) (price->input.len > 40 ? 40
                                                        : price->input.len),
                           price->input.data);
    }

    if (!admin_is_decimal(price->output.data, price->output.len, 0)) {
        admin_prices_error(load, price->line, "output_per_million \"%.*s\" "
                           "is not a decimal number from 0 and below 1e15 "
                           "such as 15 or 0.60",
                           (int) (price->output.len > 40 ? 40
                                                         : price->output.len),
                           price->output.data);
    }
}


/* Sorts a copy by model, so that equal models sit next to each other. */
static void
admin_prices_find_duplicates(admin_prices_load_t *load,
    admin_price_t *prices, size_t n)
{
    size_t          i;
    admin_price_t  *sorted;

    if (n < 2) {
        return;
    }

    sorted = malloc(n * sizeof(admin_price_t));
    if (sorted == NULL) {
        admin_fail(load->admin, "prices load: out of memory");
    }

    memcpy(sorted, prices, n * sizeof(admin_price_t));
    qsort(sorted, n, sizeof(admin_price_t), admin_prices_by_model);

    for (i = 1; i < n; i++) {
        if (sorted[i - 1].model.len == sorted[i].model.len
            && memcmp(sorted[i - 1].model.data, sorted[i].model.data,
                      sorted[i].model.len)
               == 0)
        {
            admin_prices_error(load, sorted[i].line, "model \"%.*s\" is "
                               "already on line %lu",
                               (int) sorted[i].model.len,
                               sorted[i].model.data, sorted[i - 1].line);
        }
    }

    free(sorted);
}


/* Orders by model bytes, then by line, so a repeat follows its first. */
static int
admin_prices_by_model(const void *one, const void *two)
{
    int                   rc;
    size_t                len;
    const admin_price_t  *a, *b;

    a = one;
    b = two;
    len = a->model.len < b->model.len ? a->model.len : b->model.len;

    rc = memcmp(a->model.data, b->model.data, len);

    if (rc == 0 && a->model.len != b->model.len) {
        rc = a->model.len < b->model.len ? -1 : 1;
    }

    if (rc == 0 && a->line != b->line) {
        rc = a->line < b->line ? -1 : 1;
    }

    return rc;
}


static void
admin_prices_error(admin_prices_load_t *load, unsigned long line,
    const char *fmt, ...)
{
    va_list  args;

    if (++load->errors > ADMIN_PRICES_REPORT_MAX) {
        return;
    }

    fprintf(stderr, "humanhours-admin: prices load: %s line %lu: ",
            load->path, line);

    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);

    fputc('\n', stderr);
}


/*
 * Appends one column of the rows as a Postgres array literal, each element
 * in double quotes with quotes and backslashes escaped.
 */
static void
admin_prices_append_array(hhw_buf_t *buf, admin_price_t *prices, size_t n,
    size_t offset)
{
    size_t          i, j;
    admin_field_t  *field;

    hhw_buf_append(buf, "{", 1);

    for (i = 0; i < n; i++) {
        field = (admin_field_t *) ((char *) &prices[i] + offset);

        hhw_buf_append(buf, i ? ",\"" : "\"", i ? 2 : 1);

        for (j = 0; j < field->len; j++) {
            if (field->data[j] == '"' || field->data[j] == '\\') {
                hhw_buf_append(buf, "\\", 1);
            }

            hhw_buf_append(buf, &field->data[j], 1);
        }

        hhw_buf_append(buf, "\"", 1);
    }

    hhw_buf_append(buf, "}", 1);
}
