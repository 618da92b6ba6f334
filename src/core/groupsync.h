/*
 * groupsync: group commit. Threads that have written files and need them
 * durable before they answer share one syncfs(2) of the file system instead
 * of an fsync each: a thread that calls groupsync_wait returns only after a
 * sync that *started after its call* has completed (a sync already running
 * when it arrived may have missed its writes), and one sync serves every
 * thread waiting when it starts. So durability is never weakened — nothing
 * returns 0 before its data and names are on disk — while concurrent
 * commits cost one disk flush per group rather than per message
 * (docs/decisions/0200-group-commit.md).
 *
 * syncfs(2) (Linux 5.8 and later report write-back errors through it) makes
 * the data and metadata of every file of the file system holding the
 * descriptor durable, so it covers file contents, renames, links and
 * unlinks alike; callers order their steps so that a crash between two syncs
 * leaves nothing half-made visible (spool.h, docs/spool.md).
 *
 * Threads: every function but new and free may be called from any number of
 * threads at once. groupsync_wait blocks (worker threads only).
 */
#ifndef POSTGATE_CORE_GROUPSYNC_H
#define POSTGATE_CORE_GROUPSYNC_H

#include <stdint.h>

#include "core/error.h"

struct groupsync;

/* The sync itself: 0, or -1 with errno set. syncfs(2) unless a test passes
 * its own. */
typedef int groupsync_fn(int fd, void *ctx);

/*
 * Share syncs of the file system holding fd (which stays the caller's and
 * must outlive the groupsync). sync may be NULL for syncfs(2); ctx is
 * passed to it.
 */
int groupsync_new(int fd, groupsync_fn *sync, void *ctx, struct groupsync **out, struct error *err);
void groupsync_free(struct groupsync *g); /* NULL ok; no thread may be waiting */

/*
 * Return when everything this thread wrote to the file system before the
 * call is durable: 0, or -1 (ERROR_TEMPORARY for ENOSPC/EDQUOT, else
 * ERROR_IO) when the sync that covered the call failed — then nothing may be
 * acknowledged.
 */
int groupsync_wait(struct groupsync *g, struct error *err);

struct groupsync_stats {
	uint64_t waits; /* calls of groupsync_wait */
	uint64_t syncs; /* syncs run: waits / syncs is the mean group size */
};
void groupsync_stats(struct groupsync *g, struct groupsync_stats *out);

#endif
