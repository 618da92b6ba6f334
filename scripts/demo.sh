#!/usr/bin/env bash
# `make demo`: a demo instance in ./demo (made once), two demo users, and
# postgated in the foreground on loopback. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
postgate="$build/postgate"
postgated="$build/postgated"
password="correct horse"
domain="example.test"

if [ ! -d demo ]; then
	"$postgate" init demo --domain "$domain"
fi
conf=demo/postgate.conf
for user in alice bob; do
	if ! "$postgate" -c "$conf" user show "$user@$domain" >/dev/null 2>&1; then
		printf '%s\n' "$password" | "$postgate" -c "$conf" user add "$user@$domain" --password-stdin
	fi
done

if [ "$(id -u)" -eq 0 ]; then
	# Started as root, postgated drops to the configured user; make sure it exists.
	run_user=$(sed -n 's/^user *= *//p' "$conf")
	if ! id "$run_user" >/dev/null 2>&1; then
		useradd --system --no-create-home --shell /usr/sbin/nologin "$run_user"
		echo "created system user $run_user"
	fi
	# The instance lives under this directory: the unprivileged user must be
	# able to reach it.
	if ! setpriv --reuid="$run_user" --regid="$run_user" --init-groups test -x "$(pwd)/demo"; then
		echo "postgated will run as '$run_user', which cannot reach $(pwd)/demo." >&2
		echo "Check out the source where that user can traverse every parent directory." >&2
		exit 1
	fi
fi

port() { awk -v s="[listener $1]" '$0==s{f=1;next} /^\[/{f=0} f&&/^listen/{sub(/.*:/,"");print;exit}' "$conf"; }

cat <<EOT

postgate demo — instance in ./demo, config demo/postgate.conf
  Server names: mail.$domain, smtp.$domain, pop.$domain (these names do not resolve:
                connect to 127.0.0.1 and use the names where a client asks for one)
  Users:        alice@$domain and bob@$domain, password "$password"
  Listeners on 127.0.0.1:
    mx          $(port mx)     SMTP: mail for the hosted domains; AUTH after STARTTLS
    submission  $(port submission)     SMTP submission: STARTTLS, then AUTH (required)
    submissions $(port submissions)     SMTP submission over implicit TLS, AUTH required
    pop3        $(port pop3)     POP3: STLS, then USER/PASS or AUTH (the same login as SMTP)
    pop3s       $(port pop3s)     POP3 over implicit TLS
    http        $(port http)     HTTP: client auto-configuration, /setup/$domain, /metrics
  The certificate is self-signed (demo/tls/cert.pem): tell your client to accept it.
  Example:      swaks --server 127.0.0.1:$(port submission) --tls --auth PLAIN \\
                  --auth-user alice@example.test --auth-password '$password' \\
                  --from alice@example.test --to bob@example.test
  Setup page:   http://127.0.0.1:$(port http)/setup/$domain
  What each listener answers in this version: docs/daemon.md
  Try:          $postgate -c $conf user list; $postgate -c $conf status
  Stop:         Ctrl-C

EOT
exec "$postgated" -c "$conf" -f
