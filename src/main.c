/* SPDX-License-Identifier: ISC */
/* Entry point: flags, subcommands, start-up order, signals. */
#include "config.h"
#include <stdio.h>
int main(void) { puts(PACKAGE_STRING); return 0; }
