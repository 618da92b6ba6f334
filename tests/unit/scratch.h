/*
 * scratch: the temporary directory and file-size limit that the disk tests
 * (spool, Maildir) share. Header-only: each test program includes it once.
 */
#ifndef POSTGATE_TESTS_SCRATCH_H
#define POSTGATE_TESTS_SCRATCH_H

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/resource.h>

/* Make /tmp/<name>.XXXXXX into dir (PATH_MAX bytes). 0 or -1. */
static inline int scratch_dir_make(const char *name, char *dir)
{
	snprintf(dir, PATH_MAX, "/tmp/%s.XXXXXX", name);
	return mkdtemp(dir) == NULL ? -1 : 0;
}

/* Remove dir and everything below it; a failed full-disk test may have left
 * its tmpfs mounted at dir/small. 0 or -1. */
static inline int scratch_dir_remove(const char *dir)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "%s/small", dir);
	(void) umount2(cmd, MNT_DETACH);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* For the tests that lower RLIMIT_FSIZE: a failed assertion must not leave
 * the limit (or SIGXFSZ ignored) for the tests after it. */
static struct rlimit scratch_saved_file_size_limit;

static inline int scratch_file_size_limit_save(void)
{
	return getrlimit(RLIMIT_FSIZE, &scratch_saved_file_size_limit);
}

static inline int scratch_file_size_limit_restore(void)
{
	signal(SIGXFSZ, SIG_DFL);
	return setrlimit(RLIMIT_FSIZE, &scratch_saved_file_size_limit);
}

#endif
