/*
 * privilege: the part of start-up that needs root, and giving root up.
 *
 * Started as root, postgated looks up its user, prepares the directories it
 * will write as that user, and (after listener.c has bound the ports) drops
 * to that user for good: supplementary groups, then the group, then the user
 * id, each real, effective and saved. It then proves the drop by trying to
 * get root back. Started as anyone else, it runs as that user and only
 * creates missing directories.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "core/log.h"
#include "daemon/internal.h"

#define PASSWD_BUF_CAP 16384

void daemon_user_lookup(const struct config *config, struct daemon_user *user_out)
{
	struct passwd pw, *found = NULL;
	char buf[PASSWD_BUF_CAP];
	int rc = getpwnam_r(config->user, &pw, buf, sizeof(buf), &found);

	if (found == NULL) {
		if (rc != 0)
			daemon_fatal(DAEMON_EXIT_FAILURE, "cannot look up user %s: %s",
				     config->user, strerror(rc));
		daemon_fatal(DAEMON_EXIT_CONFIG,
			     "user %s does not exist; create it (useradd --system %s) or set user "
			     "in %s",
			     config->user, config->user, config->path);
	}
	if (pw.pw_uid == 0)
		daemon_fatal(DAEMON_EXIT_CONFIG,
			     "user %s has uid 0; postgated does not serve the network as root",
			     config->user);
	snprintf(user_out->name, sizeof(user_out->name), "%s", pw.pw_name);
	user_out->uid = pw.pw_uid;
	user_out->gid = pw.pw_gid;
}

static void ensure_dir(const char *path, const struct daemon_user *user)
{
	struct error err;
	uid_t uid = user != NULL ? user->uid : FSUTIL_KEEP_OWNER;
	gid_t gid = user != NULL ? user->gid : FSUTIL_KEEP_GROUP;

	if (fsutil_dir_ensure(path, 0700, uid, gid, &err) < 0)
		daemon_fatal(DAEMON_EXIT_FAILURE, "%s", err.message);
}

void daemon_dirs_prepare(const struct config *config, const struct daemon_user *user)
{
	static const char *const spool_dirs[] = { "spool", "spool/tmp", "spool/queue",
						  "spool/deferred" };
	/* SQLite keeps a journal or WAL beside the database; the daemon must own
	 * them too, or the first write after a root-run `postgate` command fails. */
	static const char *const db_suffixes[] = { "", "-journal", "-wal", "-shm" };
	char path[CONFIG_PATH_MAX + 32];
	struct error err;
	int n;

	ensure_dir(config->state_dir, user);
	for (size_t i = 0; i < ARRAY_LEN(spool_dirs); i++) {
		n = snprintf(path, sizeof(path), "%s/%s", config->state_dir, spool_dirs[i]);
		if (n < 0 || (size_t) n >= sizeof(path))
			daemon_fatal(DAEMON_EXIT_CONFIG, "state_dir is too long");
		ensure_dir(path, user);
	}
	ensure_dir(config->maildir_root, user);
	if (user == NULL)
		return;
	for (size_t i = 0; i < ARRAY_LEN(db_suffixes); i++) {
		n = snprintf(path, sizeof(path), "%s%s", config->accounts_db, db_suffixes[i]);
		if (n < 0 || (size_t) n >= sizeof(path))
			daemon_fatal(DAEMON_EXIT_CONFIG, "accounts_db is too long");
		if (fsutil_file_chown(path, user->uid, user->gid, &err) < 0)
			daemon_fatal(DAEMON_EXIT_FAILURE, "%s", err.message);
	}
}

/*
 * Each session holds a socket and, in a transaction, its spool file; the
 * listeners, the store, the logs and the directories need some more. A
 * shell's or a service's default soft limit (1024) would cap the daemon near
 * 1,000 sessions whatever max_sessions says, so the soft limit is raised to
 * the hard one (systemd's default hard limit is 524288). The hard limit is
 * the administrator's: a value still below what max_sessions needs is a
 * warning, with the number.
 */
void daemon_files_limit_raise(const struct config *config)
{
	uint64_t wanted = config->max_sessions * 2 + 1024;
	struct rlimit limit;

	if (getrlimit(RLIMIT_NOFILE, &limit) != 0)
		return;
	if (limit.rlim_cur != limit.rlim_max) {
		limit.rlim_cur = limit.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &limit) != 0)
			(void) getrlimit(RLIMIT_NOFILE, &limit);
	}
	if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < (rlim_t) wanted)
		log_warning("open files limit=%llu, below the %llu that max_sessions=%llu needs: "
			    "raise the hard limit (LimitNOFILE= in systemd)",
			    (unsigned long long) limit.rlim_cur, (unsigned long long) wanted,
			    (unsigned long long) config->max_sessions);
	else
		log_info("open files limit=%llu", (unsigned long long) limit.rlim_cur);
}

void daemon_privileges_drop(const struct daemon_user *user)
{
	if (initgroups(user->name, user->gid) != 0)
		daemon_fatal(DAEMON_EXIT_FAILURE, "cannot set the groups of user %s: %s",
			     user->name, strerror(errno));
	if (setresgid(user->gid, user->gid, user->gid) != 0)
		daemon_fatal(DAEMON_EXIT_FAILURE, "cannot change to group %ld: %s",
			     (long) user->gid, strerror(errno));
	if (setresuid(user->uid, user->uid, user->uid) != 0)
		daemon_fatal(DAEMON_EXIT_FAILURE, "cannot change to user %s: %s", user->name,
			     strerror(errno));
	/* Trust, but verify: with every id changed, none of these may succeed. */
	if (setuid(0) == 0 || seteuid(0) == 0 || getuid() == 0 || geteuid() == 0)
		daemon_fatal(DAEMON_EXIT_FAILURE,
			     "privileges were not dropped: root is still reachable");
	if (user->gid != 0 && (setgid(0) == 0 || setegid(0) == 0))
		daemon_fatal(DAEMON_EXIT_FAILURE,
			     "privileges were not dropped: group root is still reachable");
	log_info("privileges dropped user=%s uid=%ld gid=%ld", user->name, (long) user->uid,
		 (long) user->gid);
}
