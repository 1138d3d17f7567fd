/* SPDX-License-Identifier: ISC */
/* JSON log lines on stderr: one object per line, with a request id where there is one. */
#ifndef HOOKD_LOG_H
#define HOOKD_LOG_H

#include <stdarg.h>
#include <stddef.h>

#include "hookd/util.h"

enum log_level {
	LOG_LEVEL_ERROR, /* something failed and needs a human */
	LOG_LEVEL_WARN,  /* something failed and hookd coped */
	LOG_LEVEL_INFO,  /* lifecycle and access lines */
	LOG_LEVEL_DEBUG, /* detail for developers */
};

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parse "error|warn|info|debug"; returns 0 or -1. */
int log_parse_level(const char *s, enum log_level *out) WUR;
/* Route libevent's own messages into our log. */
void log_route_libevent(void);

void log_msg(enum log_level level, const char *req_id, const char *fmt, ...) PRINTF_LIKE(3, 4);
void log_vmsg(enum log_level level, const char *req_id, const char *fmt, va_list ap)
    PRINTF_LIKE(3, 0);

#define log_error(...) log_msg(LOG_LEVEL_ERROR, NULL, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LEVEL_WARN, NULL, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LEVEL_INFO, NULL, __VA_ARGS__)
#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_get_level() >= LOG_LEVEL_DEBUG)                                            \
			log_msg(LOG_LEVEL_DEBUG, NULL, __VA_ARGS__);                               \
	} while (0)

/* One access line per HTTP request. */
void log_access(const char *req_id, const char *method, const char *path, int status, size_t bytes,
    double ms, const char *peer);

/* Append s to buf as JSON string content (no quotes), escaping as JSON requires. */
size_t log_json_escape(char *buf, size_t len, const char *s);

#endif
