/*
 * hashmem: the memory of an argon2id run, on huge pages.
 *
 * libsodium maps the 64 MiB of each argon2id run with its own
 * mmap(MAP_POPULATE) and unmaps it afterwards. With 4 KiB pages that is
 * 16,384 pages to allocate, zero and map per password check, and where page
 * tables are expensive to change (a paravirtualized guest such as the
 * benchmark machine) that costs more than the hash itself: measured there,
 * 4 to 5 argon2id verifications/s on one core with 4 KiB pages, 9 to 10
 * with 2 MiB pages, the same parameters and the same result.
 *
 * So this module defines mmap() for the process (the executable's
 * definition comes first in the dynamic linker's search, ahead of the C
 * library's). Every call is passed to the kernel unchanged, except one made
 * on a thread inside auth_hashmem_begin/end for a large private anonymous
 * mapping: that one is mapped without MAP_POPULATE, advised MADV_HUGEPAGE
 * (transparent huge pages in "madvise" or "always" mode; in "never" mode
 * the advice is ignored), then populated with MADV_POPULATE_WRITE when the
 * caller asked for MAP_POPULATE. The caller gets the same zeroed, writable,
 * private memory either way; a failed advice changes nothing but speed.
 *
 * Not in sanitizer builds, whose runtimes intercept mmap themselves, nor
 * outside x86-64 and arm64: there the functions below do nothing and
 * auth_hashmem_is_active() is false.
 */
#ifndef POSTGATE_AUTH_HASHMEM_H
#define POSTGATE_AUTH_HASHMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Mappings from this size up are a hash's memory (argon2id's is 64 MiB,
 * crypto_pwhash_MEMLIMIT_INTERACTIVE; libsodium's own small ones are pages). */
#define AUTH_HASHMEM_MIN_BYTES ((size_t) 8 << 20)

/* Mark the calling thread as running a password hash, and unmark it. */
void auth_hashmem_begin(void);
void auth_hashmem_end(void);

/* Whether the mmap() of this module is in use (false in sanitizer builds). */
bool auth_hashmem_is_active(void);

/* Mappings given huge-page advice since the start (any thread). */
uint64_t auth_hashmem_advised_count(void);

#endif
