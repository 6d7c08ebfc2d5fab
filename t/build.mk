# C unit tests: each t/unit/test_*.c is one binary linked with the common
# library. "make unit" builds and runs them all and fails if any fails.

UNIT_SRCS := $(wildcard t/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:%.c=$(BUILD)/%)

.PHONY: unit

# Naming the objects outside the pattern rule keeps make from deleting them
# as intermediate files after each run.
$(UNIT_BINS): $(COMMON_OBJS)

$(BUILD)/t/unit/%: t/unit/%.c t/unit/unit.h $(COMMON_OBJS) $(COMMON_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(COMMON_OBJS) $(LDLIBS)

# Every binary runs even after a failure, so one run shows all failures.
unit: $(UNIT_BINS)
	@status=0; \
	for test in $(UNIT_BINS); do \
	    echo "$$test"; \
	    $$test || status=1; \
	done; \
	exit $$status
