# Miky backend.  GNU make.  `make help` lists the targets.

PREFIX	?= /usr/local
DESTDIR	?=
BUILD	:= build
CC	?= cc
OPT	?= -O2

PKGS	:= libpq libcjson libcurl libargon2 libcrypto
WARN	:= -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
	   -Wmissing-prototypes -Wpointer-arith -Wcast-qual -Wformat=2 \
	   -Wvla -Wimplicit-fallthrough -Wno-missing-field-initializers
# Evaluated when used, so `make run` can install the packages first.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS))

override CFLAGS += -std=c17 $(OPT) -g $(WARN) -D_GNU_SOURCE -pthread -I. \
	$(PKG_CFLAGS)
override LDLIBS += $(PKG_LIBS) -lm -pthread

ifeq ($(SANITIZE),1)
SAN	:= -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	   -fno-omit-frame-pointer
override CFLAGS  += $(SAN)
override LDFLAGS += $(SAN)
endif

LIB_SRC	:= $(sort $(wildcard lib/*.c))
APP_SRC	:= $(sort $(wildcard app/*.c))
LIB_OBJ	:= $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
GEN_OBJ	:= $(BUILD)/obj/schema_files.o $(BUILD)/obj/common_passwords.o
APP_OBJ	:= $(APP_SRC:%.c=$(BUILD)/obj/%.o) $(GEN_OBJ)
SCHEMA	:= $(sort $(wildcard schema/*.sql))
UNIT	:= $(patsubst t/unit/%.c,$(BUILD)/t/%.t,$(sort $(wildcard t/unit/*.c)))
FUZZ	:= $(patsubst fuzz/%.c,$(BUILD)/fuzz/%,$(sort $(wildcard fuzz/fuzz_*.c)))

.PHONY: all deps vendor run stop test install bench bench-deps fuzz fuzz-deps fuzz-run psql clean help valgrind FORCE

all: $(BUILD)/miky $(UNIT)

help:
	@echo "make run      install packages, build, start PostgreSQL, app and nginx"
	@echo "make stop     stop what 'make run' started"
	@echo "make vendor   npm packages; marked and DOMPurify into web/vendor/"
	@echo "make test     build and run every test (SANITIZE=1 for ASan+UBSan)"
	@echo "make bench    throughput figures (wrk over loopback)"
	@echo "make fuzz     build the libFuzzer targets and run each a while"
	@echo "make psql     a psql shell on the dev database"
	@echo "make install  PREFIX=$(PREFIX) DESTDIR=$(DESTDIR)"

# The flags in force; objects are rebuilt when they change (SANITIZE=1).
$(BUILD)/.flags: FORCE
	@mkdir -p $(BUILD)
	@echo '$(CC) $(CFLAGS) $(LDFLAGS) $(LDLIBS)' | cmp -s - $@ || \
	    echo '$(CC) $(CFLAGS) $(LDFLAGS) $(LDLIBS)' > $@

Q	:= $(if $(V),,@)

$(BUILD)/obj/%.o: %.c $(BUILD)/.flags
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/embed: tools/embed.c
	@mkdir -p $(@D)
	$(Q)$(CC) -std=c17 -O1 -Wall -Wextra -Werror -o $@ $<

$(BUILD)/schema_files.c: $(BUILD)/embed $(SCHEMA)
	$(Q)$(BUILD)/embed schema $(SCHEMA) > $@

$(BUILD)/common_passwords.c: $(BUILD)/embed data/common-passwords.txt
	$(Q)$(BUILD)/embed words common_passwords data/common-passwords.txt > $@

$(BUILD)/obj/%.o: $(BUILD)/%.c $(BUILD)/.flags
	@mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -Wno-missing-variable-declarations -c -o $@ $<

$(BUILD)/libmiky.a: $(LIB_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/miky: $(APP_OBJ) $(BUILD)/libmiky.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(APP_OBJ) $(BUILD)/libmiky.a $(LDLIBS)

$(BUILD)/t/%.t: t/unit/%.c t/unit/tap.h $(BUILD)/libmiky.a
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libmiky.a $(LDLIBS)

deps:
	@scripts/deps.sh
	@scripts/vendor.sh

# npm packages from package-lock.json; marked and DOMPurify into web/vendor/.
vendor:
	@scripts/vendor.sh

run: deps
	@$(MAKE) --no-print-directory all
	@scripts/dev.sh up

stop:
	@scripts/dev.sh down

test: deps
	@$(MAKE) --no-print-directory all
	@scripts/test.sh $(TESTS)

bench: bench-deps
	@$(MAKE) --no-print-directory all
	@perl bench/run.pl

# libFuzzer targets, built with clang over the lib/ sources.
FUZZ_CFLAGS = -std=c17 -g -O1 -D_GNU_SOURCE -pthread -I. -Ilib $(PKG_CFLAGS) \
	-fsanitize=fuzzer,address,undefined
FUZZ_SECONDS ?= 30
$(BUILD)/fuzz/%: fuzz/%.c $(LIB_SRC)
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -o $@ $< $(LIB_SRC) $(PKG_LIBS) -lm

fuzz: fuzz-deps
	@$(MAKE) --no-print-directory fuzz-run

fuzz-deps:
	@scripts/deps.sh fuzz

bench-deps:
	@scripts/deps.sh bench

fuzz-run: $(FUZZ)
	@for f in $(FUZZ); do \
	    n=$$(basename $$f); mkdir -p $(BUILD)/corpus/$$n; \
	    echo "== $$n ($(FUZZ_SECONDS)s)"; \
	    $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 \
	        $(BUILD)/corpus/$$n fuzz/corpus/$$n > $(BUILD)/fuzz/$$n.log 2>&1 \
	        || { tail -30 $(BUILD)/fuzz/$$n.log; exit 1; }; \
	    tail -2 $(BUILD)/fuzz/$$n.log; \
	    for r in fuzz/regression/$$n-*; do [ -e "$$r" ] || continue; \
	        $$f "$$r" > /dev/null 2>&1 || { echo "regression $$r fails"; exit 1; }; \
	    done; \
	done

psql:
	@psql "$$(scripts/pg.sh url "$$(scripts/dev.sh pgdir)" miky)"

valgrind: $(BUILD)/miky $(UNIT)
	@for t in $(UNIT); do valgrind -q --error-exitcode=1 \
	    --leak-check=full $$t >/dev/null || exit 1; done; echo "valgrind: ok"

install: $(BUILD)/miky vendor
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/miky/schema \
	    $(DESTDIR)$(PREFIX)/share/miky/web \
	    $(DESTDIR)$(PREFIX)/share/miky/nginx/snippets \
	    $(DESTDIR)/etc/systemd/system
	install -m 755 $(BUILD)/miky $(DESTDIR)$(PREFIX)/bin/miky
	install -m 644 $(SCHEMA) $(DESTDIR)$(PREFIX)/share/miky/schema/
	install -m 644 nginx/*.conf* $(DESTDIR)$(PREFIX)/share/miky/nginx/
	install -m 644 nginx/snippets/*.conf $(DESTDIR)$(PREFIX)/share/miky/nginx/snippets/
	install -m 644 systemd/*.service systemd/*.timer \
	    $(DESTDIR)/etc/systemd/system/
	install -d $(DESTDIR)$(PREFIX)/share/miky/scripts
	install -m 755 scripts/nginx-site.sh $(DESTDIR)$(PREFIX)/share/miky/scripts/
	cp -R web/. $(DESTDIR)$(PREFIX)/share/miky/web/
	chmod -R a+rX,go-w $(DESTDIR)$(PREFIX)/share/miky/web

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
