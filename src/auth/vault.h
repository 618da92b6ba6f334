/*
 * vault: locked, guarded memory for the passwords of logins in flight,
 * allocated once.
 *
 * Each login copies the client's password until its hash job has run.
 * sodium_malloc per copy gives it guard pages and mlock, but costs about
 * eight system calls (mmap, mprotect, mlock, and munlock, mprotect, munmap
 * to free), and unmapping in a threaded process makes every other CPU flush
 * its TLB: measured at about 5 % of the daemon's CPU per message in
 * workload (b) of bench/compare.sh. The vault is one sodium_allocarray of
 * slot_count slots (guard pages around the whole, locked, never swapped),
 * handed out and taken back with no system call; a slot is wiped with
 * sodium_memzero when given back, and the whole by sodium_free at the end.
 *
 * When every slot is taken, auth_vault_take returns NULL and the caller
 * falls back to sodium_malloc.
 *
 * Not thread-safe: one thread (the event loop) takes and gives; other
 * threads may read and write a slot they were handed in between.
 */
#ifndef POSTGATE_AUTH_VAULT_H
#define POSTGATE_AUTH_VAULT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"

#define AUTH_VAULT_SLOTS 64 /* logins in flight served without an allocation */

struct auth_vault;

/* slot_count 1..65536 and slot_len > 0, else ERROR_USAGE; ERROR_TEMPORARY
 * when memory runs out. */
struct auth_vault *auth_vault_new(size_t slot_count, size_t slot_len, struct error *err);

/* A slot of slot_len bytes, all zero; NULL when every slot is taken. */
void *auth_vault_take(struct auth_vault *vault);

/* Wipes slot and makes it free again. slot must come from this vault's
 * auth_vault_take and not have been given back. After auth_vault_close,
 * the last slot given back frees the vault. */
void auth_vault_give(struct auth_vault *vault, void *slot);

/* Whether p is inside one of the vault's slots. */
bool auth_vault_owns(const struct auth_vault *vault, const void *p);

size_t auth_vault_in_use(const struct auth_vault *vault);

/* The owner is done with the vault: it is freed (wiped) now when no slot is
 * out, else when the last one comes back. NULL does nothing. */
void auth_vault_close(struct auth_vault *vault);

#endif
