#!/usr/bin/env bash
# bench/compare.sh: postgate side by side with Postfix + Dovecot on this
# machine, loopback only. Installs the peers from Debian if missing (their
# system services are stopped and disabled: nothing listens on 25, 110, 143,
# 993 or 995 afterwards), configures private instances in a temporary
# directory, starts postgated and the peers, runs every workload against each
# server in turn (A B A B ...) for ROUNDS rounds and prints one table of
# medians. Everything it started is stopped on exit.
#
#   bench/compare.sh [--build DIR] [--rounds N] [--quick] [--keep] [--only a,b,c,d,e,f]
#
# Not part of `make check`. Needs root (it installs packages, creates system
# users, starts servers that drop privileges). See docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)

build=build
rounds=3
quick=0
keep=0
only="a,b,c,d,e,f"
while [ $# -gt 0 ]; do
	case "$1" in
	--build) build=$2; shift 2 ;;
	--rounds) rounds=$2; shift 2 ;;
	--quick) quick=1; shift ;;
	--keep) keep=1; shift ;;
	--only) only=$2; shift 2 ;;
	-h|--help) sed -n '2,13p' "$0"; exit 0 ;;
	*) echo "compare.sh: unknown option $1" >&2; exit 64 ;;
	esac
done
case "$build" in /*) ;; *) build="$src/$build" ;; esac

# Workload sizes. --quick divides the message counts by 4 and the idle
# sessions by 2 (the table says so).
count_a=4000 count_b=1500 count_c=3000 idle_n=10000 pop_per_user=100 pop_users=10
# (b) against the argon2id-bound peer runs at a few msg/s: a smaller count
# gives the same rate in minutes less.
count_b_argon=200
# (f): login_users distinct users log in at once, new ones each round (no
# cache can help); cached_users clients log in again and again with the
# password they used before, cached_sessions_pg (postgate) or
# cached_sessions_peer (Dovecot, which hashes each time) sessions each.
login_users=20 cached_users=10 cached_sessions_pg=100 cached_sessions_peer=3
tls_version=${TLS_VERSION:-1.3}
password="bench-password-1"
if [ "$quick" = 1 ]; then
	count_a=1000 count_b=375 count_b_argon=50 count_c=750 idle_n=5000
fi
want() { case ",$only," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
say() { printf '== %s\n' "$*" >&2; }

[ "$(id -u)" -eq 0 ] || { echo "compare.sh: run as root" >&2; exit 1; }

# --- build -------------------------------------------------------------------
if [ ! -f "$build/build.ninja" ]; then
	meson setup "$build" >/dev/null
fi
ninja -C "$build" -j2 postgated postgate bench/smtpload bench/idle bench/pop3load bench/fsync >/dev/null
smtpload="$build/bench/smtpload" idle="$build/bench/idle" pop3load="$build/bench/pop3load"

# --- peers: install without leaving system services running ------------------
peer_packages="postfix dovecot-core dovecot-pop3d dovecot-lmtpd"
missing=""
for p in $peer_packages; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	say "installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	echo "postfix postfix/mailname string bench.test" | debconf-set-selections
	# Keep the packages' maintainer scripts from starting the system services at all.
	made_policy=0
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		made_policy=1
	fi
	apt-get install -y -q $peer_packages >/dev/null
	[ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi
for svc in postfix dovecot; do
	if [ -d /run/systemd/system ]; then
		systemctl disable --now "$svc" >/dev/null 2>&1 || true
	else
		service "$svc" stop >/dev/null 2>&1 || true
		update-rc.d "$svc" disable >/dev/null 2>&1 || true
	fi
done
if ss -ltnH '( sport = :25 or sport = :110 or sport = :143 or sport = :993 or sport = :995 )' | grep -q .; then
	echo "compare.sh: something listens on 25/110/143/993/995; it is not ours, left alone:" >&2
	ss -ltnpH '( sport = :25 or sport = :110 or sport = :143 or sport = :993 or sport = :995 )' >&2
fi

# One system user owns the peers' Maildirs (virtual(8) needs a uid >= 100).
vmail=postgate-bench-vmail
id "$vmail" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$vmail"
id postgate >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgate
vmail_uid=$(id -u "$vmail") vmail_gid=$(id -g "$vmail")

# --- work directory, ports, cleanup ------------------------------------------
work=$(mktemp -d /tmp/postgate-compare.XXXXXX)
chmod 755 "$work"
pids_to_stop=()
cleanup() {
	set +e
	for dir in "$work"/postfix-*/etc; do
		[ -f "$dir/main.cf" ] && postfix -c "$dir" stop >/dev/null 2>&1
	done
	[ -f "$work/dovecot/dovecot.conf" ] && doveadm -c "$work/dovecot/dovecot.conf" stop >/dev/null 2>&1
	for pid in "${pids_to_stop[@]}"; do
		kill "$pid" 2>/dev/null
	done
	sleep 1
	for pid in "${pids_to_stop[@]}"; do
		kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
	done
	if [ "$keep" = 1 ]; then
		echo "kept $work" >&2
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
pg_mx=$(free_port) pg_sub=$(free_port) pg_subs=$(free_port) pg_pop3=$(free_port)
pg_pop3s=$(free_port) pg_http=$(free_port)
pf_lmtp_mx=$(free_port) pf_lmtp_sub=$(free_port)
pf_virt_mx=$(free_port) pf_virt_sub=$(free_port)
dc_pop3=$(free_port) dc_pop3s=$(free_port) dc_lmtp=$(free_port) dc_auth=$(free_port)

users="alice bob"
for i in $(seq 1 $pop_users); do users="$users pop$i"; done
if want f; then
	for r in $(seq 1 "$rounds"); do
		for i in $(seq 1 $login_users); do users="$users l${r}u$i"; done
	done
	for i in $(seq 1 $cached_users); do users="$users c$i"; done
fi

# --- postgate ----------------------------------------------------------------
say "postgate instance in $work/postgate"
"$build/postgate" init "$work/postgate" --domain example.test >/dev/null
pg_conf="$work/postgate/postgate.conf"
/usr/bin/python3 - "$pg_conf" "$pg_mx" "$pg_sub" "$pg_subs" "$pg_pop3" "$pg_pop3s" "$pg_http" <<'EOF'
import re, sys
path, ports = sys.argv[1], dict(zip(["mx", "submission", "submissions", "pop3", "pop3s", "http"], sys.argv[2:]))
out, section = [], None
for line in open(path):
    m = re.match(r"\[listener (\w+)\]", line)
    if m:
        section = m.group(1)
    if section in ports and line.startswith("listen"):
        line = "listen = 127.0.0.1:%s\n" % ports[section]
    out.append(line)
# A benchmark is one client machine hammering the server on purpose: lift
# the abuse limits that would refuse it (the peer has none of them set).
limits = ("max_sessions = 1000000\nmax_sessions_per_ip = 1000000\n"
          "user_messages_per_hour = 0\nuser_messages_per_day = 0\n"
          "user_recipients_per_hour = 0\nuser_recipients_per_day = 0\n"
          "hold_login_addresses = 0\nmax_commands = 1000000\n")
first = next((i for i, l in enumerate(out) if l.startswith("[")), len(out))
out.insert(first, limits)
open(path, "w").writelines(out)
EOF
for u in $users; do
	printf '%s\n' "$password" | "$build/postgate" -c "$pg_conf" user add "$u@example.test" --password-stdin >/dev/null
done
"$build/postgated" -c "$pg_conf" -f >"$work/postgate/postgated.log" 2>&1 &
pg_pid=$!
pids_to_stop+=("$pg_pid")

# --- Dovecot: POP3, LMTP and the SASL service for Postfix ---------------------
say "Dovecot instance in $work/dovecot"
mkdir -p "$work/dovecot/run" "$work/dovecot/state" "$work/peer-mail"
chown "$vmail:$vmail" "$work/peer-mail"
cp "$work/postgate/tls/cert.pem" "$work/postgate/tls/key.pem" "$work/dovecot/"
# The very same argon2id secrets as postgate's users: equal cost per verification.
/usr/bin/python3 - "$work/postgate/state/accounts.db" >"$work/dovecot/users" <<'EOF'
import sqlite3, sys
for address, secret in sqlite3.connect(sys.argv[1]).execute("select address, secret_argon2id from users"):
    print("%s:%s" % (address, secret))
EOF
# A peer-only login with a cheap scheme, for (b) and (c) "peer not bound by
# argon2id": Dovecot verifies a password on every login, cache or not, so
# with argon2id the peer's submission figures are its hashing rate.
echo "fast@example.test:$(doveadm pw -s SHA512-CRYPT -p "$password")" >>"$work/dovecot/users"
chmod 640 "$work/dovecot/users"
chgrp dovecot "$work/dovecot/users"
cat >"$work/dovecot/dovecot.conf" <<EOF
base_dir = $work/dovecot/run
state_dir = $work/dovecot/state
log_path = $work/dovecot/dovecot.log
protocols = pop3 lmtp
listen = 127.0.0.1
ssl = yes
ssl_cert = <$work/dovecot/cert.pem
ssl_key = <$work/dovecot/key.pem
ssl_dh = </usr/share/dovecot/dh.pem
disable_plaintext_auth = yes
auth_mechanisms = plain login
# Like postgate's credential cache: a re-login with the same password costs no hash.
auth_cache_size = 10M
auth_cache_ttl = 1 hour
passdb {
  driver = passwd-file
  args = $work/dovecot/users
}
userdb {
  driver = static
  args = uid=$vmail_uid gid=$vmail_gid home=$work/peer-mail/%d/%n
}
mail_location = maildir:~
# Durability: fsync whenever data would otherwise be lost (delivered mail before the LMTP reply).
mail_fsync = optimized
first_valid_uid = 100
protocol lmtp {
  postmaster_address = postmaster@example.test
}
service pop3-login {
  inet_listener pop3 {
    port = $dc_pop3
  }
  inet_listener pop3s {
    port = $dc_pop3s
    ssl = yes
  }
}
service lmtp {
  inet_listener lmtp {
    port = $dc_lmtp
  }
}
service auth {
  inet_listener {
    port = $dc_auth
  }
}
EOF
dovecot -c "$work/dovecot/dovecot.conf"

# --- Postfix: two instances, delivering through Dovecot LMTP or by virtual(8) --
postfix_instance() { # NAME MX_PORT SUBMISSION_PORT TRANSPORT
	local name=$1 mx=$2 sub=$3 transport=$4 dir="$work/postfix-$1"
	say "Postfix instance $name in $dir"
	mkdir -p "$dir/etc" "$dir/spool" "$dir/data"
	chown postfix "$dir/data"
	cp "$work/postgate/tls/cert.pem" "$work/postgate/tls/key.pem" "$dir/etc/"
	: >"$dir/etc/vmailbox"
	for u in $users; do echo "$u@example.test example.test/$u/" >>"$dir/etc/vmailbox"; done
	cat >"$dir/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $dir/spool
data_directory = $dir/data
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
mail_owner = postfix
setgid_group = postdrop
myhostname = mx-$name.bench.test
mydomain = bench.test
myorigin = bench.test
mydestination =
local_recipient_maps =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_client_connection_count_limit = 0
smtpd_client_event_limit_exceptions = 127.0.0.0/8
virtual_mailbox_domains = example.test
virtual_mailbox_maps = texthash:$dir/etc/vmailbox
virtual_mailbox_base = $work/peer-mail
virtual_uid_maps = static:$vmail_uid
virtual_gid_maps = static:$vmail_gid
virtual_transport = $transport
smtpd_tls_cert_file = $dir/etc/cert.pem
smtpd_tls_key_file = $dir/etc/key.pem
smtpd_tls_security_level = may
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:127.0.0.1:$dc_auth
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
biff = no
EOF
	sed -e "s/^smtp      inet/127.0.0.1:$mx inet/" /etc/postfix/master.cf >"$dir/etc/master.cf"
	cat >>"$dir/etc/master.cf" <<EOF
127.0.0.1:$sub inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_tls_auth_only=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
EOF
	# No chroot: the Debian default would need a copy of /etc files inside each queue directory.
	postconf -c "$dir/etc" -F '*/*/chroot = n'
	postfix -c "$dir/etc" check >/dev/null 2>&1 || true
	if ! postfix -c "$dir/etc" start >/dev/null 2>&1; then
		# A failure before the log file is open goes to syslog only.
		echo "compare.sh: Postfix $name did not start; try: postfix -c $dir/etc start (and read syslog)" >&2
		exit 1
	fi
}
postfix_instance lmtp "$pf_lmtp_mx" "$pf_lmtp_sub" "lmtp:inet:127.0.0.1:$dc_lmtp"
postfix_instance virtual "$pf_virt_mx" "$pf_virt_sub" virtual

wait_port() {
	for _ in $(seq 1 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "compare.sh: nothing listens on 127.0.0.1:$1" >&2
	exit 1
}
for p in "$pg_mx" "$pg_sub" "$pf_lmtp_mx" "$pf_lmtp_sub" "$pf_virt_mx" "$pf_virt_sub" "$dc_pop3" "$dc_lmtp" "$dc_auth"; do
	wait_port "$p"
done
master_pid() { tr -d ' ' <"$work/postfix-$1/spool/pid/master.pid"; }
dovecot_pid() { cat "$work/dovecot/run/master.pid"; }

# --- measuring -----------------------------------------------------------------
results="$work/results"
: >"$results"
record() { echo "$1 $2 $3" >>"$results"; } # WORKLOAD SERVER VALUE
field() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" | tail -1; }
count_new() { { find "$1" -type f 2>/dev/null || true; } | wc -l; }
now() { date +%s.%N; }

# (a): accepted and in the recipient's Maildir: the clock stops when the last
# message has arrived in new/.
# postgate's group commit: file system syncs and the durable steps that
# waited for them, from its /metrics.
pg_syncs() {
	curl -s "http://127.0.0.1:$pg_http/metrics" |
		awk '$1 == "postgate_spool_syncs_total" { s = $2 } $1 == "postgate_spool_sync_waits_total" { w = $2 } END { print s + 0, w + 0 }'
}

run_mx() { # SERVER PORT MAILDIR_NEW
	local before after start end out ok syncs_before
	before=$(count_new "$3")
	[ "$1" = postgate ] && syncs_before=$(pg_syncs)
	start=$(now)
	out=$("$smtpload" -c 20 -k 10 -n "$count_a" -s 4096 --to bob@example.test 127.0.0.1 "$2" || true)
	ok=$(echo "$out" | field ok)
	for _ in $(seq 1 1200); do
		after=$(count_new "$3")
		[ "$after" -ge $((before + ok)) ] && break
		sleep 0.05
	done
	end=$(now)
	echo "$out" >>"$work/log-a-$1"
	record a "$1" "$(awk -v n="$((after - before))" -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", n / (e - s) }')"
	if [ "$1" = postgate ]; then
		# syncfs calls per message delivered in this run
		echo "$syncs_before $(pg_syncs)" | awk -v n="$((after - before))" \
			'n > 0 { printf "%.3f\n", ($3 - $1) / n }' | while read -r v; do record a-syncs postgate "$v"; done
	fi
	[ "$(echo "$out" | field errors)" = 0 ] || record a-errors "$1" "$(echo "$out" | field errors)"
}

# The rate is of accepted messages (the 250s), as a client sees it. Postfix
# delivers after its 250 and postgate (local mail) before it, so each run
# then waits until its messages are in bob's Maildir: otherwise a server's
# delivery backlog would run during, and be billed to, the next server's run.
bob_new() { # SERVER
	case $1 in
	postgate) echo "$work/postgate/mail/example.test/bob/new" ;;
	*) echo "$work/peer-mail/example.test/bob/new" ;;
	esac
}

run_submission() { # WORKLOAD SERVER PORT PER_CONNECTION COUNT [USER]
	local out user=${6:-alice@example.test} before ok after
	before=$(count_new "$(bob_new "$2")")
	out=$("$smtpload" -c 20 -k "$4" -n "$5" -s 4096 --tls starttls --tls-version "$tls_version" \
		-u "$user" -p "$password" --from "$user" --to bob@example.test \
		127.0.0.1 "$3" || true)
	echo "$out" >>"$work/log-$1-$2"
	ok=$(echo "$out" | field ok)
	for _ in $(seq 1 1200); do
		after=$(count_new "$(bob_new "$2")")
		[ "$after" -ge $((before + ${ok:-0})) ] && break
		sleep 0.05
	done
	echo "delivered $((after - before)) of ${ok:-0} before the next run" >>"$work/log-$1-$2"
	record "$1" "$2" "$(echo "$out" | field msgs_per_s)"
	[ "$(echo "$out" | field errors)" = 0 ] || record "$1-errors" "$2" "$(echo "$out" | field errors)"
}

run_idle() { # SERVER PORT SELECTORS...
	local server=$1 port=$2 out
	shift 2
	out=$("$idle" -n "$idle_n" --hold 5 --timeout 8 --max-pending 2500 "$@" 127.0.0.1 "$port" || true)
	echo "$out" >>"$work/log-d-$server"
	record d "$server" "$(echo "$out" | field rss_kib)"
	record d-pss "$server" "$(echo "$out" | field pss_kib)"
	record d-served "$server" "$(echo "$out" | field served)"
}

run_pop3() { # SERVER PORT
	local out
	out=$("$pop3load" -c "$pop_users" -u 'pop%d@example.test' -p "$password" --tls stls \
		--tls-version "$tls_version" 127.0.0.1 "$2" || true)
	echo "$out" >>"$work/log-e-$1"
	record e "$1" "$(echo "$out" | field seconds)"
	record e-messages "$1" "$(echo "$out" | field messages)"
}

# (f) over implicit TLS (pop3s) on both servers: USER/PASS with the same
# {ARGON2ID} secrets, an empty maildrop (LIST, QUIT). The rate is sessions/s.
run_logins() { # SERVER PORT ROUND
	local out sessions=$cached_sessions_pg
	out=$("$pop3load" -c "$login_users" -u "l${3}u%d@example.test" -p "$password" --tls implicit \
		--tls-version "$tls_version" 127.0.0.1 "$2" || true)
	echo "$out" >>"$work/log-f-uncached-$1"
	record f-uncached "$1" "$(echo "$out" | field sessions_per_s)"
	[ "$(echo "$out" | field errors)" = 0 ] || record f-uncached-errors "$1" "$(echo "$out" | field errors)"
	[ "$1" = postgate ] || sessions=$cached_sessions_peer
	out=$("$pop3load" -c "$cached_users" --sessions "$sessions" -u 'c%d@example.test' -p "$password" \
		--tls implicit --tls-version "$tls_version" 127.0.0.1 "$2" || true)
	echo "$out" >>"$work/log-f-cached-$1"
	record f-cached "$1" "$(echo "$out" | field sessions_per_s)"
	[ "$(echo "$out" | field errors)" = 0 ] || record f-cached-errors "$1" "$(echo "$out" | field errors)"
}
if want f; then
	say "(f): one login per cached user on each server, so that the rounds find them cached"
	for port in "$pg_pop3s" "$dc_pop3s"; do
		"$pop3load" -c "$cached_users" -u 'c%d@example.test' -p "$password" --tls implicit \
			--tls-version "$tls_version" 127.0.0.1 "$port" >/dev/null || true
	done
fi

# Does postgate's pop3 listener serve POP3 yet? (Before the POP3 engine it answers "unavailable".)
pop3_greeting=$(/usr/bin/python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
s.settimeout(5)
print(s.recv(512).decode("ascii", "replace").strip())' "$pg_pop3" 2>/dev/null || true)
pg_pop3_served=1
case "$pop3_greeting" in
+OK*) ;;
*) pg_pop3_served=0 ;;
esac

if want e; then
	say "filling $pop_users mailboxes with $pop_per_user messages of 4 KiB on each server"
	for i in $(seq 1 $pop_users); do
		"$smtpload" -c 5 -k 20 -n "$pop_per_user" -s 4096 --to "pop$i@example.test" 127.0.0.1 "$pf_virt_mx" >/dev/null
		[ "$pg_pop3_served" = 1 ] &&
			"$smtpload" -c 5 -k 20 -n "$pop_per_user" -s 4096 --to "pop$i@example.test" 127.0.0.1 "$pg_mx" >/dev/null
	done
	for _ in $(seq 1 600); do
		done_peer=$(count_new "$work/peer-mail/example.test")
		done_pg=$(count_new "$work/postgate/mail/example.test")
		want_pg=$((pg_pop3_served * pop_users * pop_per_user))
		[ "$done_peer" -ge $((pop_users * pop_per_user)) ] && [ "$done_pg" -ge "$want_pg" ] && break
		sleep 0.1
	done
fi

for round in $(seq 1 "$rounds"); do
	say "round $round of $rounds"
	if want a; then
		run_mx postgate "$pg_mx" "$work/postgate/mail/example.test/bob/new"
		run_mx postfix-lmtp "$pf_lmtp_mx" "$work/peer-mail/example.test/bob/new"
		run_mx postgate "$pg_mx" "$work/postgate/mail/example.test/bob/new"
		run_mx postfix-virtual "$pf_virt_mx" "$work/peer-mail/example.test/bob/new"
	fi
	if want b; then
		run_submission b postgate "$pg_sub" 1 "$count_b"
		run_submission b postfix "$pf_virt_sub" 1 "$count_b_argon"
		run_submission b-fast postfix "$pf_virt_sub" 1 "$count_b" fast@example.test
	fi
	if want c; then
		run_submission c postgate "$pg_sub" 10 "$count_c"
		run_submission c postfix "$pf_virt_sub" 10 "$count_c"
		run_submission c-fast postfix "$pf_virt_sub" 10 "$count_c" fast@example.test
	fi
	if want d; then
		run_idle postgate "$pg_mx" --pid "$pg_pid"
		run_idle postfix "$pf_virt_mx" --tree "$(master_pid virtual)" --tree "$(dovecot_pid)"
	fi
	if want e; then
		[ "$pg_pop3_served" = 1 ] && run_pop3 postgate "$pg_pop3"
		run_pop3 dovecot "$dc_pop3"
	fi
	if want f; then
		run_logins postgate "$pg_pop3s" "$round"
		run_logins dovecot "$dc_pop3s" "$round"
	fi
done

# --- the table -----------------------------------------------------------------
median() { # WORKLOAD SERVER
	awk -v w="$1" -v s="$2" '$1 == w && $2 == s && $3 != "" { print $3 }' "$results" | sort -g |
		awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { # A B HIGHER_IS_BETTER
	awk -v a="$1" -v b="$2" -v up="$3" 'BEGIN { if (a == "-" || b == "-" || a == 0 || b == 0) print "-"; else printf "%.2f\n", up ? a / b : b / a }'
}
row() { # LABEL UNIT POSTGATE PEER HIGHER_IS_BETTER
	printf '%-58s %14s %14s %7s\n' "$1" "$3 $2" "$4 $2" "$(ratio "$3" "$4" "$5")"
}
echo
echo "postgate $(git -C "$src" describe --always --dirty 2>/dev/null) vs $(postconf -d -h mail_version 2>/dev/null | sed 's/^/Postfix /') + $(dovecot --version | sed 's/^/Dovecot /;s/ (.*//'); $(nproc) CPUs; $(date -u +%Y-%m-%dT%H:%MZ)"
echo "medians of $rounds rounds, servers alternating; TLS $tls_version; ratio > 1: postgate better$([ "$quick" = 1 ] && echo "; --quick: reduced counts")"
printf '%-58s %14s %14s %7s\n' "workload" "postgate" "peer" "ratio"
if want a; then
	# The disk's limit for one fsync per message, on the file system of the
	# spools, measured now (bench/fsync: write, fsync, rename, fsync dir).
	"$build/bench/fsync" -T 1,2 -d 3 "$work/fsync-test" >"$work/log-fsync" 2>&1 || true
	fsync1=$(grep '^threads=1 ' "$work/log-fsync" | field cycles_per_s)
	fsync2=$(grep '^threads=2 ' "$work/log-fsync" | field cycles_per_s)
	pg=$(median a postgate)
	row "(a) MX to Maildir, 4 KiB, 20 conn, $count_a msgs; peer: Postfix+LMTP" "msg/s" "$pg" "$(median a postfix-lmtp)" 1
	row "(a) same; peer: Postfix virtual(8)" "msg/s" "$pg" "$(median a postfix-virtual)" 1
	echo "    disk: ${fsync1:--} write+fsync+rename+dir-fsync cycles/s from 1 thread, ${fsync2:--} from 2;" \
		"postgate (a): $(median a-syncs postgate) syncfs per message (group commit)"
fi
want b && row "(b) STARTTLS+AUTH, new connection per msg, 20 conc, $count_b msgs (peer $count_b_argon)" "msg/s" "$(median b postgate)" "$(median b postfix)" 1
want b && row "(b) same; peer login {SHA512-CRYPT}, not argon2id-bound" "msg/s" "$(median b postgate)" "$(median b-fast postfix)" 1
want c && row "(c) STARTTLS+AUTH, 10 msgs per connection, 20 conc, $count_c msgs" "msg/s" "$(median c postgate)" "$(median c postfix)" 1
want c && row "(c) same; peer login {SHA512-CRYPT}, not argon2id-bound" "msg/s" "$(median c postgate)" "$(median c-fast postfix)" 1
if want d; then
	row "(d) $idle_n idle sessions: server RSS, all processes (KiB)" "" "$(median d postgate)" "$(median d postfix)" 0
	row "(d) $idle_n idle sessions: server PSS, all processes (KiB)" "" "$(median d-pss postgate)" "$(median d-pss postfix)" 0
	row "(d) $idle_n idle sessions: sessions served" "" "$(median d-served postgate)" "$(median d-served postfix)" 1
fi
if want e; then
	if [ "$pg_pop3_served" = 1 ]; then
		row "(e) POP3 STLS download $((pop_users * pop_per_user)) x 4 KiB, $pop_users clients (s)" "" "$(median e postgate)" "$(median e dovecot)" 0
	else
		row "(e) POP3 STLS download $((pop_users * pop_per_user)) x 4 KiB, $pop_users clients (s)" "" "-" "$(median e dovecot)" 0
		echo "    (e) skipped for postgate: its pop3 listener answered \"$pop3_greeting\""
	fi
fi
if want f; then
	row "(f) POP3S logins, uncached argon2id, $login_users users at once (logins/s)" "" "$(median f-uncached postgate)" "$(median f-uncached dovecot)" 1
	row "(f) POP3S logins, cached re-login, $cached_users clients (logins/s)" "" "$(median f-cached postgate)" "$(median f-cached dovecot)" 1
	echo "    postgate since start: $("$build/postgate" -c "$pg_conf" status 2>/dev/null | grep -E '^auth (ok|cache hits|hash runs):' | tr -s ' ' | paste -sd ',' -)"
fi
if grep -q -- "-errors " "$results"; then
	echo "errors (workload server count):"
	grep -- "-errors " "$results" | sed 's/^/    /'
fi
echo "raw figures and tool output: $work (kept with --keep)"
