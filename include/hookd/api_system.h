/* SPDX-License-Identifier: ISC */
/* System routes: liveness, readiness, Prometheus metrics. */
#ifndef HOOKD_API_SYSTEM_H
#define HOOKD_API_SYSTEM_H

struct app;

void api_system_register(struct app *app);

#endif
