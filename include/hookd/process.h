/* SPDX-License-Identifier: ISC */
/* Inbound processing: lease events with handler work, run SQL handlers, retry, record logs. */
#ifndef HOOKD_PROCESS_H
#define HOOKD_PROCESS_H

struct app;

struct process;

struct process *process_new(struct app *app);
void process_free(struct process *p);
/* Handler work was just committed: look for due events now rather than at the next poll. */
void process_kick(struct process *p);
/* Events leased and not yet finished (drain waits for 0). */
int process_busy(const struct process *p);

/* Admin routes for inbound events: list, get, logs, reprocess. */
void api_inbound_register(struct app *app);

#endif
