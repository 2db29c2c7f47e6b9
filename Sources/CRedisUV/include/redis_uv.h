/*
 * redis_uv: hiredis 0.14.1 <-> libuv glue.
 *
 * A patched copy of hiredis' <hiredis/adapters/libuv.h> (BSD-3-Clause,
 * Copyright (c) 2009-2011 Salvatore Sanfilippo, Pieter Noordhuis). Changes:
 *  - poll errors are forwarded to hiredis instead of being dropped, so a
 *    refused or failed connect reaches the connect callback and a socket error
 *    fails the queued commands (the stock adapter hangs silently and leaks the
 *    poll handle);
 *  - the adapter struct is freed when uv_poll_init fails (the stock one leaks);
 *  - the event hooks are installed only once attaching succeeded, so a failed
 *    attach leaves the context safe to redisAsyncFree;
 *  - the loop is passed as `void *` so Swift callers need no libuv types.
 */
#ifndef RUNQUEUE_REDIS_UV_H
#define RUNQUEUE_REDIS_UV_H

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

/* Attaches `ac` (a fresh context from redisAsyncConnect with ac->err == 0) to
 * the libuv loop `uv_loop` (a uv_loop_t *). Returns REDIS_OK, or REDIS_ERR when
 * the context is already attached, memory is short, or uv_poll_init fails; on
 * REDIS_ERR nothing was attached and the caller still owns `ac`. */
int redis_uv_attach(redisAsyncContext *ac, void *uv_loop);

#endif
