/* SPDX-License-Identifier: ISC */
/* A small metrics registry: counters, gauges, histograms, rendered as Prometheus text. */
#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "hookd/metrics.h"
#include "hookd/util.h"

#define MAX_LABELS 4

enum metric_type {
	METRIC_COUNTER,   /* only goes up */
	METRIC_GAUGE,     /* set to a value */
	METRIC_HISTOGRAM, /* observations in cumulative buckets */
};

struct series {
	struct series *next;
	char *values[MAX_LABELS];
	double value;    /* counter/gauge value, histogram sum */
	double *buckets; /* histogram: count per bound, plus +Inf last */
	unsigned long long count;
};

struct metric {
	struct metric *next;
	enum metric_type type;
	char *name, *help;
	int nlabels;
	char *labels[MAX_LABELS];
	double *bounds;
	int nbounds;
	struct series *series;
};

struct collector {
	struct collector *next;
	void (*cb)(void *);
	void *arg;
};

static struct metric *families, **families_tail = &families;
static struct collector *collectors;

const double metrics_latency_buckets[] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
const int metrics_latency_nbuckets = (int)ARRAY_SIZE(metrics_latency_buckets);

static struct metric *
family_new(enum metric_type type, const char *name, const char *help, const char *labels)
{
	struct metric *m = xcalloc(1, sizeof(*m));

	m->type = type;
	m->name = xstrdup(name);
	m->help = xstrdup(help);
	if (labels != NULL) {
		char *copy = xstrdup(labels), *save = NULL;

		for (char *t = strtok_r(copy, ",", &save); t != NULL && m->nlabels < MAX_LABELS;
		     t = strtok_r(NULL, ",", &save))
			m->labels[m->nlabels++] = xstrdup(t);
		free(copy);
	}
	*families_tail = m;
	families_tail = &m->next;
	return m;
}

struct metric *
metric_counter(const char *name, const char *help, const char *labels)
{
	return family_new(METRIC_COUNTER, name, help, labels);
}

struct metric *
metric_gauge(const char *name, const char *help, const char *labels)
{
	return family_new(METRIC_GAUGE, name, help, labels);
}

struct metric *
metric_histogram(
    const char *name, const char *help, const char *labels, const double *bounds, int nbounds)
{
	struct metric *m = family_new(METRIC_HISTOGRAM, name, help, labels);

	m->bounds = xmalloc((size_t)nbounds * sizeof(double));
	memcpy(m->bounds, bounds, (size_t)nbounds * sizeof(double));
	m->nbounds = nbounds;
	return m;
}

static struct series *
series_get(struct metric *m, va_list ap, int create)
{
	const char *vals[MAX_LABELS];
	struct series *s, **tail = &m->series;

	for (int i = 0; i < m->nlabels; i++) {
		vals[i] = va_arg(ap, const char *);
		if (vals[i] == NULL)
			vals[i] = "";
	}
	for (s = m->series; s != NULL; tail = &s->next, s = s->next) {
		int i;

		for (i = 0; i < m->nlabels; i++) {
			if (strcmp(s->values[i], vals[i]) != 0)
				break;
		}
		if (i == m->nlabels)
			return s;
	}
	if (!create)
		return NULL;
	s = xcalloc(1, sizeof(*s));
	for (int i = 0; i < m->nlabels; i++)
		s->values[i] = xstrdup(vals[i]);
	if (m->type == METRIC_HISTOGRAM)
		s->buckets = xcalloc((size_t)m->nbounds + 1, sizeof(double));
	*tail = s;
	return s;
}

void
metric_add(struct metric *m, double v, ...)
{
	va_list ap;

	va_start(ap, v);
	series_get(m, ap, 1)->value += v;
	va_end(ap);
}

void
metric_set(struct metric *m, double v, ...)
{
	va_list ap;

	va_start(ap, v);
	series_get(m, ap, 1)->value = v;
	va_end(ap);
}

void
metric_observe(struct metric *m, double v, ...)
{
	va_list ap;
	struct series *s;
	int i;

	va_start(ap, v);
	s = series_get(m, ap, 1);
	va_end(ap);
	for (i = 0; i < m->nbounds && v > m->bounds[i]; i++)
		;
	s->buckets[i] += 1;
	s->value += v;
	s->count++;
}

double
metric_value(struct metric *m, ...)
{
	va_list ap;
	struct series *s;

	va_start(ap, m);
	s = series_get(m, ap, 0);
	va_end(ap);
	return s ? s->value : 0;
}

void
metrics_on_collect(void (*cb)(void *), void *arg)
{
	struct collector *c = xmalloc(sizeof(*c));

	c->cb = cb;
	c->arg = arg;
	c->next = collectors;
	collectors = c;
}

struct out {
	char *p;
	size_t len, cap;
};

static void out_printf(struct out *o, const char *fmt, ...) PRINTF_LIKE(2, 3);

static void
out_printf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < o->cap - o->len) {
			o->len += (size_t)n;
			return;
		}
		o->cap = o->cap * 2 + (size_t)(n > 0 ? n : 0) + 1024;
		o->p = xrealloc(o->p, o->cap);
	}
}

static void
out_labels(struct out *o, const struct metric *m, const struct series *s, const char *le)
{
	int any = 0;

	if (m->nlabels == 0 && le == NULL)
		return;
	out_printf(o, "{");
	for (int i = 0; i < m->nlabels; i++) {
		out_printf(o, "%s%s=\"", any++ ? "," : "", m->labels[i]);
		for (const char *c = s->values[i]; *c != '\0'; c++) {
			if (*c == '\\' || *c == '"')
				out_printf(o, "\\%c", *c);
			else if (*c == '\n')
				out_printf(o, "\\n");
			else
				out_printf(o, "%c", *c);
		}
		out_printf(o, "\"");
	}
	if (le != NULL)
		out_printf(o, "%sle=\"%s\"", any ? "," : "", le);
	out_printf(o, "}");
}

static void
out_number(struct out *o, double v)
{
	if (v == floor(v) && fabs(v) < 1e15)
		out_printf(o, " %.0f\n", v);
	else
		out_printf(o, " %.9g\n", v);
}

char *
metrics_render(size_t *len)
{
	static const char *const types[] = {"counter", "gauge", "histogram"};
	struct out o = {xmalloc(4096), 0, 4096};

	o.p[0] = '\0';
	for (struct collector *c = collectors; c != NULL; c = c->next)
		c->cb(c->arg);
	for (struct metric *m = families; m != NULL; m = m->next) {
		out_printf(
		    &o, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name, types[m->type]);
		for (struct series *s = m->series; s != NULL; s = s->next) {
			if (m->type != METRIC_HISTOGRAM) {
				out_printf(&o, "%s", m->name);
				out_labels(&o, m, s, NULL);
				out_number(&o, s->value);
				continue;
			}
			double cum = 0;

			for (int i = 0; i <= m->nbounds; i++) {
				char le[32];

				cum += s->buckets[i];
				if (i < m->nbounds)
					snprintf(le, sizeof(le), "%g", m->bounds[i]);
				else
					snprintf(le, sizeof(le), "+Inf");
				out_printf(&o, "%s_bucket", m->name);
				out_labels(&o, m, s, le);
				out_number(&o, cum);
			}
			out_printf(&o, "%s_sum", m->name);
			out_labels(&o, m, s, NULL);
			out_printf(&o, " %.9g\n", s->value);
			out_printf(&o, "%s_count", m->name);
			out_labels(&o, m, s, NULL);
			out_printf(&o, " %llu\n", s->count);
		}
	}
	*len = o.len;
	return o.p;
}

void
metrics_reset(void)
{
	while (families != NULL) {
		struct metric *m = families;

		families = m->next;
		while (m->series != NULL) {
			struct series *s = m->series;

			m->series = s->next;
			for (int i = 0; i < m->nlabels; i++)
				free(s->values[i]);
			free(s->buckets);
			free(s);
		}
		for (int i = 0; i < m->nlabels; i++)
			free(m->labels[i]);
		free(m->bounds);
		free(m->name);
		free(m->help);
		free(m);
	}
	families_tail = &families;
	while (collectors != NULL) {
		struct collector *c = collectors;

		collectors = c->next;
		free(c);
	}
}
