# humanhours edge: the nginx module, the writer daemon and the admin command.
#
#   make          build everything into build/
#   make run      start a local stack and send the examples through it
#   make test     C unit tests, then the prove suite against real servers
#   make bench    wrk against loopback; ratios against a baseline

BUILD     := build
CC        ?= cc
CFLAGS    ?= -g -O2
CFLAGS    += -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Werror \
             -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fPIC
CPPFLAGS  += -Icommon -I/usr/include/cjson -I/usr/include/hiredis \
             -I/usr/include/postgresql \
             -DHH_DEFAULT_RUN_DIR=\"$(CURDIR)/.run\"
LDLIBS    := -lhiredis -lsodium -lcjson -lpq -lcurl -lm

COMMON_SRCS := $(wildcard common/*.c)
COMMON_OBJS := $(COMMON_SRCS:%.c=$(BUILD)/%.o)
COMMON_HDRS := $(wildcard common/*.h)

MODULE_SRCS := $(wildcard ngx_http_humanhours_module/*.[ch])
MODULE      := $(BUILD)/ngx_http_humanhours_module.so

.PHONY: all deps module run test unit bench clean

all: $(MODULE) writer-all

deps:
	@auto/install-deps

$(MODULE): config $(MODULE_SRCS) $(COMMON_SRCS) $(COMMON_HDRS)
	auto/build-module $(BUILD)

module: $(MODULE)

$(BUILD)/%.o: %.c $(COMMON_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

include writer/build.mk
include t/build.mk

run: deps all
	auto/run

test: deps all unit
	prove -I t/lib -r t/

bench: deps all
	auto/bench-edge
	auto/bench-writer

clean:
	rm -rf $(BUILD)
