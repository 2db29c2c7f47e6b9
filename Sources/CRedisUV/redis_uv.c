/*
 * Patched copy of hiredis 0.14.1's libuv adapter; see include/redis_uv.h for
 * what changed and why.
 *
 * Lifetime: one redis_uv_events per attached context, allocated in
 * redis_uv_attach and freed in the poll handle's close callback, which libuv
 * runs after hiredis called cleanup (hiredis frees the context right after
 * cleanup returns, so `context` is cleared there and checked everywhere).
 */
#include "redis_uv.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct redis_uv_events {
    redisAsyncContext *context; /* NULL once hiredis called cleanup */
    uv_poll_t handle;
    int events;                 /* UV_READABLE | UV_WRITABLE currently wanted */
} redis_uv_events;

static void redis_uv_on_poll(uv_poll_t *handle, int status, int events) {
    redis_uv_events *p = (redis_uv_events *)handle->data;
    if (p->context == NULL) return;

    if (status != 0) {
        /* libuv stopped the poll (POLLERR/POLLHUP surface as UV_EBADF or
         * another negative code). Let hiredis look at the socket: before the
         * connect finished, the write handler reads SO_ERROR and reports the
         * failure through the connect callback; afterwards, the read handler
         * gets the error or EOF from read(2) and disconnects, failing every
         * queued command with a NULL reply. */
        if (!(p->context->c.flags & REDIS_CONNECTED)) {
            redisAsyncHandleWrite(p->context);
        } else {
            redisAsyncHandleRead(p->context);
        }
        return;
    }

    if (events & UV_READABLE) redisAsyncHandleRead(p->context);
    /* The read handler may have freed the context (cleanup clears it). */
    if (p->context != NULL && (events & UV_WRITABLE)) redisAsyncHandleWrite(p->context);
}

/* Re-arms the poll for p->events, or stops it when nothing is wanted.
 * uv_poll_start/uv_poll_stop fail only for a closing handle or an invalid
 * fd; hiredis' hooks return void, and a dead socket is reported through the
 * read/write handlers anyway, so the return codes are deliberately ignored. */
static void redis_uv_update(redis_uv_events *p) {
    if (p->events) {
        (void)uv_poll_start(&p->handle, p->events, redis_uv_on_poll);
    } else {
        (void)uv_poll_stop(&p->handle);
    }
}

static void redis_uv_add_read(void *privdata) {
    redis_uv_events *p = (redis_uv_events *)privdata;
    p->events |= UV_READABLE;
    redis_uv_update(p);
}

static void redis_uv_del_read(void *privdata) {
    redis_uv_events *p = (redis_uv_events *)privdata;
    p->events &= ~UV_READABLE;
    redis_uv_update(p);
}

static void redis_uv_add_write(void *privdata) {
    redis_uv_events *p = (redis_uv_events *)privdata;
    p->events |= UV_WRITABLE;
    redis_uv_update(p);
}

static void redis_uv_del_write(void *privdata) {
    redis_uv_events *p = (redis_uv_events *)privdata;
    p->events &= ~UV_WRITABLE;
    redis_uv_update(p);
}

static void redis_uv_on_close(uv_handle_t *handle) {
    free(handle->data);
}

static void redis_uv_cleanup(void *privdata) {
    redis_uv_events *p = (redis_uv_events *)privdata;
    p->context = NULL; /* hiredis frees the context right after this returns */
    uv_close((uv_handle_t *)&p->handle, redis_uv_on_close);
}

int redis_uv_attach(redisAsyncContext *ac, void *uv_loop) {
    if (ac == NULL || uv_loop == NULL || ac->ev.data != NULL) return REDIS_ERR;

    redis_uv_events *p = (redis_uv_events *)calloc(1, sizeof(*p));
    if (p == NULL) return REDIS_ERR;

    /* Fails with a negative code (e.g. ENOMEM, or EEXIST when the fd is
     * already watched); the handle was not registered, so plain free is right. */
    if (uv_poll_init((uv_loop_t *)uv_loop, &p->handle, ac->c.fd) != 0) {
        free(p);
        return REDIS_ERR;
    }

    p->handle.data = p;
    p->context = ac;
    ac->ev.data = p;
    ac->ev.addRead = redis_uv_add_read;
    ac->ev.delRead = redis_uv_del_read;
    ac->ev.addWrite = redis_uv_add_write;
    ac->ev.delWrite = redis_uv_del_write;
    ac->ev.cleanup = redis_uv_cleanup;
    return REDIS_OK;
}
