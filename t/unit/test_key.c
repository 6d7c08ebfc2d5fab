/*
 * Unit tests for common/hh_key.c: key parsing and generation, pepper files,
 * and the peppered argon2id hash.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hh_key.h"
#include "unit.h"


#define VALID_PREFIX  "AbC123xY"
#define VALID_SECRET  "0123456789abcdefghijABCDEFGHIJklmnopqrstKLMNOPQR"


typedef struct {
    const char     *name;
    const char     *key;
    size_t          len;        /* 0: strlen(key) */
    int             rc;
    hh_key_mode_e   mode;
} key_case_t;


static const key_case_t  key_cases[] = {
    { "live key", "hh_live_" VALID_PREFIX "_" VALID_SECRET, 0, 0,
      HH_KEY_LIVE },
    { "test key", "hh_test_" VALID_PREFIX "_" VALID_SECRET, 0, 0,
      HH_KEY_TEST },
    { "digits only", "hh_live_12345678_"
      "000000000000000000000000000000000000000000000000", 0, 0,
      HH_KEY_LIVE },
    { "unknown mode", "hh_prod_" VALID_PREFIX "_" VALID_SECRET, 0, -1, 0 },
    { "upper-case mode", "HH_LIVE_" VALID_PREFIX "_" VALID_SECRET, 0, -1,
      0 },
    { "secret one short", "hh_live_" VALID_PREFIX "_"
      "0123456789abcdefghijABCDEFGHIJklmnopqrstKLMNOPQ", 0, -1, 0 },
    { "secret one long", "hh_live_" VALID_PREFIX "_" VALID_SECRET "Z", 0,
      -1, 0 },
    { "prefix one short", "hh_live_AbC123x_" VALID_SECRET "Z", 0, -1, 0 },
    { "missing separator", "hh_live_" VALID_PREFIX "x" VALID_SECRET, 0, -1,
      0 },
    { "dash in prefix", "hh_live_AbC-23xY_" VALID_SECRET, 0, -1, 0 },
    { "underscore in secret", "hh_live_" VALID_PREFIX "_"
      "0123456789abcdefghij_BCDEFGHIJklmnopqrstKLMNOPQR", 0, -1, 0 },
    { "non-ASCII in secret", "hh_live_" VALID_PREFIX "_"
      "0123456789abcdefghij\xc3\xa9" "CDEFGHIJklmnopqrstKLMNOPQR", 0, -1,
      0 },
    { "NUL in secret", "hh_live_" VALID_PREFIX "_"
      "0123456789abcdefghij\0BCDEFGHIJklmnopqrstKLMNOPQR", 65, -1, 0 },
    { "len shorter than text", "hh_live_" VALID_PREFIX "_" VALID_SECRET, 64,
      -1, 0 },
    { "empty", "", 0, -1, 0 },
    { "bearer word included", "Bearer hh_live_" VALID_PREFIX "_"
      VALID_SECRET, 0, -1, 0 },
};


static void
test_parse_table(void)
{
    int             rc;
    size_t          i, len;
    hh_key_parts_t  parts;

    for (i = 0; i < sizeof(key_cases) / sizeof(key_cases[0]); i++) {
        len = key_cases[i].len ? key_cases[i].len : strlen(key_cases[i].key);

        memset(&parts, 0x55, sizeof(parts));
        rc = hh_key_parse(key_cases[i].key, len, &parts);

        UNIT_CHECK(rc == key_cases[i].rc, "parse %s: rc %d, expected %d",
                   key_cases[i].name, rc, key_cases[i].rc);

        if (rc == 0 && key_cases[i].rc == 0) {
            UNIT_CHECK(parts.mode == key_cases[i].mode, "parse %s: mode",
                       key_cases[i].name);
            UNIT_CHECK(memcmp(parts.prefix, key_cases[i].key + 8, 8) == 0
                       && parts.prefix[8] == '\0',
                       "parse %s: prefix \"%s\"", key_cases[i].name,
                       parts.prefix);
        }
    }

    UNIT_CHECK(hh_key_parse(NULL, 65, &parts) == -1, "parse NULL key");
    UNIT_CHECK(hh_key_parse(key_cases[0].key, 65, NULL) == 0,
               "parse without parts");
}


static void
test_generate(void)
{
    int             i, j, bad, counts[256], rare, common;
    char            key[HH_KEY_LEN + 1], previous[HH_KEY_LEN + 1];
    hh_key_parts_t  parts;

    memset(counts, 0, sizeof(counts));
    previous[0] = '\0';
    bad = 0;

    for (i = 0; i < 2000; i++) {
        hh_key_generate(i % 2 ? HH_KEY_TEST : HH_KEY_LIVE, key);

        if (strlen(key) != HH_KEY_LEN
            || hh_key_parse(key, HH_KEY_LEN, &parts) != 0
            || parts.mode != (i % 2 ? HH_KEY_TEST : HH_KEY_LIVE)
            || strcmp(key, previous) == 0)
        {
            bad++;
        }

        for (j = 8; j < HH_KEY_LEN; j++) {
            counts[(unsigned char) key[j]]++;
        }

        memcpy(previous, key, sizeof(key));
    }

    UNIT_CHECK(bad == 0, "generate: %d of 2000 keys malformed or repeated",
               bad);

    /*
     * 2000 keys contain 112000 random characters, about 1806 of each of the
     * 62. A count outside 1300 to 2300 is over 11 standard deviations off,
     * so a failure means a biased or broken generator.
     */
    rare = 0;
    common = 0;

    for (i = 0; i < 256; i++) {
        if (i == '_') {
            continue;
        }

        if ((i >= 'A' && i <= 'Z') || (i >= 'a' && i <= 'z')
            || (i >= '0' && i <= '9'))
        {
            rare += counts[i] < 1300;
            common += counts[i] > 2300;

        } else {
            common += counts[i] != 0;
        }
    }

    UNIT_CHECK(rare == 0 && common == 0,
               "generate: %d characters too rare, %d too common or foreign",
               rare, common);
    UNIT_CHECK(counts['_'] == 2000, "generate: one separator per key, %d",
               counts['_']);
}


static int
write_file(const char *path, const char *data, size_t len)
{
    FILE  *f;

    f = fopen(path, "wb");
    if (f == NULL) {
        return -1;
    }

    if (len > 0 && fwrite(data, 1, len, f) != len) {
        fclose(f);
        return -1;
    }

    return fclose(f);
}


typedef struct {
    const char  *name;
    const char  *contents;
    size_t       len;
    int          rc;
} pepper_case_t;


#define PEPPER_32  "SECRETpepperSECRETpepperSECRET32"

static const pepper_case_t  pepper_cases[] = {
    { "exactly 32 bytes", PEPPER_32, 32, 0 },
    { "32 bytes and newline", PEPPER_32 "\n", 33, 0 },
    { "31 bytes", "SECRETpepperSECRETpepperSECRET3", 31, -1 },
    { "31 bytes and newline", "SECRETpepperSECRETpepperSECRET3\n", 32, -1 },
    { "31 bytes and 2 newlines", "SECRETpepperSECRETpepperSECRET3\n\n", 33,
      0 },
    { "binary with NUL", "\0\1\2\3\4\5\6\7\0\1\2\3\4\5\6\7"
      "\0\1\2\3\4\5\6\7\0\1\2\3\4\5\6\7", 32, 0 },
    { "empty", "", 0, -1 },
};


static void
test_pepper(const char *dir)
{
    int            rc;
    char           path[512], err[256], *big;
    size_t         i, len;
    unsigned char  pepper[HH_PEPPER_LEN], expected[HH_PEPPER_LEN];
    unsigned char  first[HH_PEPPER_LEN];

    snprintf(path, sizeof(path), "%s/pepper", dir);

    for (i = 0; i < sizeof(pepper_cases) / sizeof(pepper_cases[0]); i++) {
        len = pepper_cases[i].len;

        if (write_file(path, pepper_cases[i].contents, len) != 0) {
            UNIT_CHECK(0, "pepper %s: cannot write %s", pepper_cases[i].name,
                       path);
            continue;
        }

        err[0] = '\0';
        rc = hh_pepper_load(path, pepper, err, sizeof(err));

        UNIT_CHECK(rc == pepper_cases[i].rc, "pepper %s: rc %d, expected %d",
                   pepper_cases[i].name, rc, pepper_cases[i].rc);

        if (rc != 0) {
            UNIT_CHECK(err[0] != '\0' && strstr(err, "SECRET") == NULL,
                       "pepper %s: message \"%s\" empty or leaks contents",
                       pepper_cases[i].name, err);
            continue;
        }

        if (pepper_cases[i].contents[len - 1] == '\n') {
            len--;
        }

        crypto_generichash(expected, sizeof(expected),
                           (const unsigned char *) pepper_cases[i].contents,
                           len, NULL, 0);

        UNIT_CHECK(memcmp(pepper, expected, sizeof(pepper)) == 0,
                   "pepper %s: key is not BLAKE2b-256 of the contents",
                   pepper_cases[i].name);

        if (i == 0) {
            memcpy(first, pepper, sizeof(first));
        }

        if (i == 1) {
            UNIT_CHECK(memcmp(first, pepper, sizeof(first)) == 0,
                       "pepper: trailing newline changes the key");
        }
    }

    big = malloc(5000);
    memset(big, 'x', 5000);
    rc = write_file(path, big, 5000);
    free(big);

    UNIT_CHECK(rc == 0
               && hh_pepper_load(path, pepper, err, sizeof(err)) == -1,
               "pepper: 5000-byte file accepted");

    unlink(path);

    err[0] = '\0';
    UNIT_CHECK(hh_pepper_load(path, pepper, err, sizeof(err)) == -1
               && strstr(err, path) != NULL,
               "pepper: missing file, message \"%s\"", err);

    UNIT_CHECK(hh_pepper_load(dir, pepper, err, sizeof(err)) == -1,
               "pepper: a directory is accepted");
}


static void
test_hash(void)
{
    char           key[HH_KEY_LEN + 1], other[HH_KEY_LEN + 1];
    char           hash[HH_KEY_HASH_MAX], hash2[HH_KEY_HASH_MAX];
    unsigned char  pepper[HH_PEPPER_LEN], pepper2[HH_PEPPER_LEN];

    memset(pepper, 7, sizeof(pepper));
    memset(pepper2, 8, sizeof(pepper2));

    hh_key_generate(HH_KEY_LIVE, key);
    memcpy(other, key, sizeof(key));
    other[HH_KEY_LEN - 1] = other[HH_KEY_LEN - 1] == 'a' ? 'b' : 'a';

    UNIT_CHECK(hh_key_hash(key, HH_KEY_LEN, pepper, hash) == 0,
               "hash: failed");
    UNIT_CHECK(strncmp(hash, "$argon2id$v=19$m=65536,t=2,p=1$", 31) == 0,
               "hash: not argon2id at interactive limits: %s", hash);

    UNIT_CHECK(hh_key_verify(hash, key, HH_KEY_LEN, pepper) == 0,
               "verify: the hashed key does not match");
    UNIT_CHECK(hh_key_verify(hash, other, HH_KEY_LEN, pepper) == -1,
               "verify: a different secret matches");
    UNIT_CHECK(hh_key_verify(hash, key, HH_KEY_LEN, pepper2) == -1,
               "verify: a different pepper matches");
    UNIT_CHECK(hh_key_verify(hash, key, HH_KEY_LEN - 1, pepper) == -1,
               "verify: a truncated key matches");
    UNIT_CHECK(hh_key_verify("$argon2id$v=19$garbage", key, HH_KEY_LEN,
                             pepper) == -1,
               "verify: a malformed hash matches");
    UNIT_CHECK(hh_key_verify(NULL, key, HH_KEY_LEN, pepper) == -1,
               "verify: a NULL hash matches");

    /* A fresh salt per hash: equal keys give different hash strings. */
    UNIT_CHECK(hh_key_hash(key, HH_KEY_LEN, pepper, hash2) == 0
               && strcmp(hash, hash2) != 0
               && hh_key_verify(hash2, key, HH_KEY_LEN, pepper) == 0,
               "hash: second hash equal to the first or not verified");
}


int
main(void)
{
    char  dir[] = "/tmp/hh-test-key-XXXXXX";

    if (sodium_init() < 0) {
        fprintf(stderr, "sodium_init() failed\n");
        return 2;
    }

    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 2;
    }

    test_parse_table();
    test_generate();
    test_pepper(dir);
    test_hash();

    rmdir(dir);

    return UNIT_REPORT();
}
