/*
 * API key format, generation and argon2id hashing, shared by the nginx
 * module and humanhours-admin so that both hash a key bit for bit alike.
 */

#ifndef HH_KEY_H
#define HH_KEY_H

#include <stddef.h>
#include <sodium.h>


#define HH_KEY_LEN           65
#define HH_KEY_PREFIX_LEN    8
#define HH_KEY_SECRET_LEN    48
#define HH_PEPPER_LEN        32
#define HH_KEY_HASH_MAX      crypto_pwhash_STRBYTES


typedef enum {
    HH_KEY_LIVE = 0,
    HH_KEY_TEST
} hh_key_mode_e;


typedef struct {
    hh_key_mode_e  mode;
    char           prefix[HH_KEY_PREFIX_LEN + 1];
} hh_key_parts_t;


/*
 * Parses a raw key of len bytes. Returns 0 and fills parts when the key is
 * hh_live_ or hh_test_, an 8-character prefix, "_" and a 48-character
 * secret, both from [A-Za-z0-9]; returns -1 otherwise. parts may be NULL.
 */
int hh_key_parse(const char *key, size_t len, hh_key_parts_t *parts);

/* Writes a new random key and its terminating NUL into out. */
void hh_key_generate(hh_key_mode_e mode, char out[HH_KEY_LEN + 1]);

/*
 * Reads the pepper file and derives the pepper key from it. Returns 0, or
 * -1 with a message in err when the file cannot be read or contains fewer
 * than 32 or more than 4096 bytes. The message never contains the file's
 * contents.
 */
int hh_pepper_load(const char *path, unsigned char pepper[HH_PEPPER_LEN],
    char *err, size_t errlen);

/*
 * Computes the argon2id hash string of a key. Slow by design (tens of
 * milliseconds, 64 MiB). Returns 0, or -1 when memory runs out.
 */
int hh_key_hash(const char *key, size_t len,
    const unsigned char pepper[HH_PEPPER_LEN], char out[HH_KEY_HASH_MAX]);

/*
 * Verifies a key against an argon2id hash string. Returns 0 on a match and
 * -1 on a mismatch, a malformed hash or lack of memory. Slow by design.
 */
int hh_key_verify(const char *hash, const char *key, size_t len,
    const unsigned char pepper[HH_PEPPER_LEN]);

#endif /* HH_KEY_H */
