/* SPDX-License-Identifier: ISC */
/* Subcommands: hookd migrate, hookd keys create|list|revoke. */
#ifndef HOOKD_CLI_H
#define HOOKD_CLI_H

struct config;

/* Each returns the process exit status. */
int cli_migrate(const struct config *cfg);
int cli_keys(const struct config *cfg, int argc, char **argv);

#endif
