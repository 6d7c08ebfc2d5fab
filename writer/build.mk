# humanhours-writer and humanhours-admin, and the code they share
# (writer/hhw_*.c, and writer/webhook_*.c for signing and delivering
# webhooks, except webhook_writer.c, the writer's sender thread). Included
# by the top Makefile, whose variables it uses.

WRITER_ONLY_SRCS := $(wildcard writer/webhook_writer.c)
WRITER_LIB_SRCS := $(filter-out $(WRITER_ONLY_SRCS), \
                     $(wildcard writer/hhw_*.c writer/webhook_*.c))
WRITER_LIB_OBJS := $(WRITER_LIB_SRCS:%.c=$(BUILD)/%.o)
WRITER_HDRS     := $(wildcard writer/*.h)

WRITER_SRCS     := $(wildcard writer/writer_*.c) $(WRITER_ONLY_SRCS)
WRITER_OBJS     := $(WRITER_SRCS:%.c=$(BUILD)/%.o)

ADMIN_SRCS      := $(wildcard writer/admin_*.c)
ADMIN_OBJS      := $(ADMIN_SRCS:%.c=$(BUILD)/%.o)

WRITER_BIN      := $(BUILD)/humanhours-writer
ADMIN_BIN       := $(BUILD)/humanhours-admin

.PHONY: writer-all

writer-all: $(WRITER_BIN) $(ADMIN_BIN)

# The admin command finds the migrations of this checkout unless
# HH_SCHEMA_DIR says otherwise.
$(BUILD)/writer/hhw_conf.o: CPPFLAGS += \
    -DHH_SCHEMA_DIR_DEFAULT=\"$(CURDIR)/schema\"

$(WRITER_LIB_OBJS) $(WRITER_OBJS) $(ADMIN_OBJS): $(WRITER_HDRS) \
    writer/build.mk

$(WRITER_BIN): $(WRITER_OBJS) $(WRITER_LIB_OBJS) $(COMMON_OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(ADMIN_BIN): $(ADMIN_OBJS) $(WRITER_LIB_OBJS) $(COMMON_OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)
