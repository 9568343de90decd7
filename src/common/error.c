/* error.c - status strings and the thread-local last-error text. */
#include "common/common.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char tk_last_error_buf[512];

const char *tokemb_status_string(int32_t status) {
    switch (status) {
    case TOKEMB_OK: return "ok";
    case TOKEMB_INVALID_ARGUMENT: return "invalid argument";
    case TOKEMB_OUT_OF_RANGE: return "out of range";
    case TOKEMB_NO_MEMORY: return "out of memory";
    case TOKEMB_IO: return "input/output error";
    case TOKEMB_FORMAT: return "malformed or unsupported file format";
    case TOKEMB_UNSUPPORTED: return "unsupported";
    case TOKEMB_OVERFLOW: return "size overflow";
    case TOKEMB_READ_ONLY: return "read-only";
    case TOKEMB_CANCELLED: return "cancelled";
    default: return "unknown status";
    }
}

const char *tokemb_last_error(void) { return tk_last_error_buf; }

int32_t tk_error(int32_t status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tk_last_error_buf, sizeof tk_last_error_buf, fmt, ap);
    va_end(ap);
    return status;
}

const char *tokemb_version_string(void) { return TOKEMB_VERSION_STRING; }
uint32_t tokemb_version_number(void) { return (uint32_t)TOKEMB_VERSION_NUMBER; }
