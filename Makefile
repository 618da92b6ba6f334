# Thin wrapper around Meson + Ninja. The two commands a newcomer needs:
#   make demo    install what is missing, build, run a demo server on loopback
#   make check   install what is missing, build, run every test
#   make bench   build the load tools in bench/ (see docs/performance.md)
#   make fuzz    run every fuzz target FUZZ_SECONDS (300) each (docs/testing.md)
#   make soak    about a minute of honest and hostile traffic (docs/testing.md)
PREFIX ?= /usr/local
DESTDIR ?=
BUILD ?= build

.PHONY: all build bench deps check demo fuzz soak install install-sendmail clean format

all: build

deps:
	@sh scripts/deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) --prefix=$(PREFIX)

build: $(BUILD)/build.ninja
	ninja -C $(BUILD)

# The load tools of bench/ (docs/performance.md); never part of `make check`.
bench: $(BUILD)/build.ninja
	ninja -C $(BUILD) bench/smtpload bench/idle bench/pop3load bench/fsync

check: deps
	@bash scripts/check.sh

# FUZZ_ARGS=--merge keeps the new inputs in fuzz/corpus/ (scripts/fuzz.sh).
fuzz: deps
	@bash scripts/fuzz.sh $(FUZZ_ARGS)

soak: deps
	@bash scripts/soak.sh

demo: deps
	@$(MAKE) --no-print-directory build
	@bash scripts/demo.sh $(BUILD)

install: $(BUILD)/build.ninja
	meson configure $(BUILD) -Dprefix=$(PREFIX)
	ninja -C $(BUILD)
	DESTDIR=$(DESTDIR) meson install -C $(BUILD) --no-rebuild

# /usr/sbin/sendmail as a link to postgate (docs/sendmail.md); replaces
# whatever sendmail is installed there.
install-sendmail: install
	mkdir -p $(DESTDIR)/usr/sbin
	ln -sf $(PREFIX)/bin/postgate $(DESTDIR)/usr/sbin/sendmail

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) build-check
