/*
 * humanhours-admin webhook: the subcommand that admin_main.c dispatches to,
 * defined in admin_webhook.c, and webhook_conf_print_help() for the usage
 * text.
 */

#ifndef WEBHOOK_ADMIN_H
#define WEBHOOK_ADMIN_H

#include "admin.h"
#include "webhook_conf.h"


void admin_webhook(admin_t *admin, int argc, char **argv);

#endif /* WEBHOOK_ADMIN_H */
