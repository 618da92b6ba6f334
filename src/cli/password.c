/*
 * password: getting a new password from the administrator without it ever
 * being on the command line (where `ps` shows it) or echoed. Either one line
 * of stdin (--password-stdin, for scripts) or typed twice at the terminal
 * with echo off. The terminal is restored on every path, including SIGINT,
 * SIGTERM, SIGHUP and SIGQUIT; reads go through read(2) one byte at a time so
 * no stdio buffer keeps a copy. Callers wipe the result.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <sodium.h>

#include "auth/secret.h"
#include "cli/internal.h"

static const int restore_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };

static struct termios saved_termios;
static volatile sig_atomic_t has_saved_termios;

/* Async-signal-safe: tcsetattr and write are; SA_RESETHAND has already put
 * back the default action, which the re-raised signal takes on return. */
static void restore_on_signal(int sig)
{
	int saved_errno = errno;

	if (has_saved_termios) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_termios);
		has_saved_termios = 0;
	}
	(void) !write(STDERR_FILENO, "\n", 1);
	raise(sig);
	errno = saved_errno;
}

/*
 * One line from fd: up to '\n' (a "\r\n" ending loses its '\r') or end of
 * input. Refuses an empty line, a NUL byte and more than AUTH_PASSWORD_MAX
 * bytes. out holds AUTH_PASSWORD_MAX + 1 bytes.
 */
static int read_line(int fd, char *out, size_t *len_out, struct error *err)
{
	size_t len = 0;
	bool is_too_long = false, has_nul = false;

	for (;;) {
		char c;
		ssize_t n = read(fd, &c, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			sodium_memzero(out, AUTH_PASSWORD_MAX + 1);
			return error_set(err, ERROR_IO, "cannot read the password: %s",
					 strerror(errno));
		}
		if (n == 0 || c == '\n')
			break;
		if (c == '\0')
			has_nul = true;
		/* Keep reading to the end of the line so nothing is left for the next read. */
		if (len == AUTH_PASSWORD_MAX)
			is_too_long = true;
		else
			out[len++] = c;
	}
	if (!is_too_long && len > 0 && out[len - 1] == '\r')
		len--;
	out[len] = '\0';
	if (is_too_long || has_nul || len == 0) {
		sodium_memzero(out, AUTH_PASSWORD_MAX + 1);
		if (is_too_long)
			return error_set(err, ERROR_DATA, "password longer than %d bytes",
					 AUTH_PASSWORD_MAX);
		if (has_nul)
			return error_set(err, ERROR_DATA, "password contains a NUL byte");
		return error_set(err, ERROR_DATA, "empty password");
	}
	*len_out = len;
	return 0;
}

static void write_prompt(const char *text)
{
	size_t len = strlen(text);

	while (len > 0) {
		ssize_t n = write(STDERR_FILENO, text, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		text += n;
		len -= (size_t) n;
	}
}

static int read_from_terminal(const char *address, char *password_out, size_t *len_out,
			      struct error *err)
{
	char again[AUTH_PASSWORD_MAX + 1];
	struct sigaction action, previous[ARRAY_LEN(restore_signals)];
	struct termios quiet;
	char prompt[ADDRESS_MAX + 32];
	size_t again_len = 0;
	int rc = -1;

	if (tcgetattr(STDIN_FILENO, &saved_termios) < 0)
		return error_set(err, ERROR_IO, "cannot read the terminal settings: %s",
				 strerror(errno));
	memset(&action, 0, sizeof(action));
	action.sa_handler = restore_on_signal;
	action.sa_flags = SA_RESETHAND;
	sigemptyset(&action.sa_mask);
	for (size_t i = 0; i < ARRAY_LEN(restore_signals); i++)
		sigaction(restore_signals[i], &action, &previous[i]);
	has_saved_termios = 1;

	quiet = saved_termios;
	quiet.c_lflag &= (tcflag_t) ~(ECHO | ECHOE | ECHOK);
	quiet.c_lflag |= ICANON;
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) < 0) {
		error_set(err, ERROR_IO, "cannot turn off echo: %s", strerror(errno));
		goto restore;
	}

	snprintf(prompt, sizeof(prompt), "New password for %s: ", address);
	write_prompt(prompt);
	rc = read_line(STDIN_FILENO, password_out, len_out, err);
	write_prompt("\n");
	if (rc < 0)
		goto restore;
	write_prompt("Retype the new password: ");
	rc = read_line(STDIN_FILENO, again, &again_len, err);
	write_prompt("\n");
	if (rc == 0 &&
	    (again_len != *len_out || sodium_memcmp(again, password_out, again_len) != 0))
		rc = error_set(err, ERROR_DATA, "the passwords do not match");
	sodium_memzero(again, sizeof(again));
	if (rc < 0)
		sodium_memzero(password_out, AUTH_PASSWORD_MAX + 1);

restore:
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_termios);
	has_saved_termios = 0;
	for (size_t i = 0; i < ARRAY_LEN(restore_signals); i++)
		sigaction(restore_signals[i], &previous[i], NULL);
	return rc;
}

int cli_password_read(bool from_stdin, const char *address, char *password_out, size_t *len_out,
		      struct error *err)
{
	if (from_stdin)
		return read_line(STDIN_FILENO, password_out, len_out, err);
	if (!isatty(STDIN_FILENO))
		return error_set(err, ERROR_USAGE,
				 "standard input is not a terminal: give the password on it with "
				 "--password-stdin");
	return read_from_terminal(address, password_out, len_out, err);
}
