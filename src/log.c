/* SPDX-License-Identifier: ISC */
/* JSON log lines on stderr: one object per line, with a request id where there is one. */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "hookd/log.h"

static enum log_level log_level = LOG_LEVEL_INFO;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

void
log_set_level(enum log_level level)
{
	log_level = level;
}

enum log_level
log_get_level(void)
{
	return log_level;
}

int
log_parse_level(const char *s, enum log_level *out)
{
	for (size_t i = 0; i < ARRAY_SIZE(level_names); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

size_t
log_json_escape(char *buf, size_t len, const char *s)
{
	size_t n = 0;

	if (len == 0)
		return 0;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		char tmp[8];
		const char *add = tmp;
		size_t addlen;

		switch (c) {
		case '"': add = "\\\""; break;
		case '\\': add = "\\\\"; break;
		case '\n': add = "\\n"; break;
		case '\r': add = "\\r"; break;
		case '\t': add = "\\t"; break;
		default:
			if (c < 0x20 || c == 0x7f)
				snprintf(tmp, sizeof(tmp), "\\u%04x", c);
			else {
				tmp[0] = (char)c;
				tmp[1] = '\0';
			}
		}
		addlen = strlen(add);
		if (n + addlen >= len)
			break;
		memcpy(buf + n, add, addlen);
		n += addlen;
	}
	buf[n] = '\0';
	return n;
}

static void
log_write_line(const char *line, size_t len)
{
	/* One write(2) per line keeps lines whole when several processes share stderr. */
	while (len > 0) {
		ssize_t w = write(STDERR_FILENO, line, len);

		if (w <= 0)
			return;
		line += w;
		len -= (size_t)w;
	}
}

void
log_vmsg(enum log_level level, const char *req_id, const char *fmt, va_list ap)
{
	char msg[2048], esc[4096], ts[32], line[4608];
	int n;

	if (level > log_level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	log_json_escape(esc, sizeof(esc), msg);
	time_iso8601(now_wall_ms(), ts, sizeof(ts));
	if (req_id != NULL)
		n = snprintf(line, sizeof(line),
		    "{\"ts\":\"%s\",\"level\":\"%s\",\"req\":\"%s\",\"msg\":\"%s\"}\n", ts,
		    level_names[level], req_id, esc);
	else
		n = snprintf(line, sizeof(line),
		    "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"}\n", ts, level_names[level],
		    esc);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	log_write_line(line, (size_t)n);
}

void
log_msg(enum log_level level, const char *req_id, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, req_id, fmt, ap);
	va_end(ap);
}

void
log_access(const char *req_id, const char *method, const char *path, int status, size_t bytes,
    double ms, const char *peer)
{
	char epath[1024], ts[32], line[1400];
	int n;

	if (log_level < LOG_LEVEL_INFO)
		return;
	log_json_escape(epath, sizeof(epath), path);
	time_iso8601(now_wall_ms(), ts, sizeof(ts));
	n = snprintf(line, sizeof(line),
	    "{\"ts\":\"%s\",\"level\":\"info\",\"req\":\"%s\",\"msg\":\"request\","
	    "\"method\":\"%s\",\"path\":\"%s\",\"status\":%d,\"bytes\":%zu,\"ms\":%.3f,"
	    "\"peer\":\"%s\"}\n",
	    ts, req_id, method, epath, status, bytes, ms, peer ? peer : "");
	if (n > 0 && (size_t)n < sizeof(line))
		log_write_line(line, (size_t)n);
}

static void
libevent_log_cb(int severity, const char *msg)
{
	switch (severity) {
	case EVENT_LOG_DEBUG: log_debug("libevent: %s", msg); break;
	case EVENT_LOG_MSG: log_info("libevent: %s", msg); break;
	case EVENT_LOG_WARN: log_warn("libevent: %s", msg); break;
	default: log_error("libevent: %s", msg);
	}
}

static void
libevent_fatal_cb(int err)
{
	log_error("libevent fatal error %d", err);
	abort();
}

void
log_route_libevent(void)
{
	event_set_log_callback(libevent_log_cb);
	event_set_fatal_callback(libevent_fatal_cb);
}
