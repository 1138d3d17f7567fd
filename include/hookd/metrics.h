/* SPDX-License-Identifier: ISC */
/* A small metrics registry: counters, gauges, histograms, rendered as Prometheus text. */
#ifndef HOOKD_METRICS_H
#define HOOKD_METRICS_H

#include <stddef.h>

struct metric;

/*
 * Families are process-wide and live until metrics_reset(). labels is a comma
 * separated list of label names ("route,status") or NULL. Calls that pass label
 * values must pass exactly that many strings.
 */
struct metric *metric_counter(const char *name, const char *help, const char *labels);
struct metric *metric_gauge(const char *name, const char *help, const char *labels);
struct metric *metric_histogram(
    const char *name, const char *help, const char *labels, const double *bounds, int nbounds);

void metric_add(struct metric *m, double v, ...);
void metric_set(struct metric *m, double v, ...);
void metric_observe(struct metric *m, double v, ...);
/* The current value of a counter or gauge series (0 when absent). */
double metric_value(struct metric *m, ...);

/* Run cb before each render, to refresh gauges that are cheaper to read than to track. */
void metrics_on_collect(void (*cb)(void *arg), void *arg);
/* Prometheus text exposition format 0.0.4; malloc'd, *len gets the length. */
char *metrics_render(size_t *len);
/* Drop every family (tests and shutdown). */
void metrics_reset(void);

/* Buckets for request and query durations, in seconds. */
extern const double metrics_latency_buckets[];
extern const int metrics_latency_nbuckets;

#endif
