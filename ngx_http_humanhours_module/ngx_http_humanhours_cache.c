/*
 * The key cache: a shared memory zone that every worker uses, one node per
 * key prefix, in a red-black tree with an LRU queue. A node keeps a keyed
 * digest of the key that verified, never the key, and apart from it the
 * digest of the last key that failed, so a wrong secret never displaces the
 * good entry. A node also marks the key being verified, so that concurrent
 * misses for one key, in any worker, share one verification, and counts the
 * verifications of unknown secrets per second, for throttling.
 */

#include "ngx_http_humanhours_module.h"


/* longer than an argon2id verification waits in a busy thread pool */
#define NGX_HH_PENDING_TIMEOUT   2000

/* secrets of one prefix marked as being verified at the same time */
#define NGX_HH_PENDING_SLOTS     4


typedef struct {
    ngx_rbtree_node_t      node;
    ngx_queue_t            queue;

    u_char                 prefix[HH_KEY_PREFIX_LEN];
    u_char                 digest[32];
    u_char                 bad_digest[32];

    int64_t                key_id;
    int64_t                org_id;

    u_char                 pending_digest[NGX_HH_PENDING_SLOTS][32];

    ngx_msec_t             expires;       /* 0: no key verified yet */
    ngx_msec_t             bad_expires;
    ngx_msec_t             pending_expires[NGX_HH_PENDING_SLOTS];
    ngx_msec_t             window;        /* start of the current second */
    ngx_uint_t             attempts;      /* verifications of new secrets */

    unsigned               test:1;
    unsigned               revoked:1;
} ngx_http_humanhours_node_t;


static ngx_http_humanhours_node_t *ngx_http_humanhours_cache_find(
    ngx_http_humanhours_cache_t *cache, u_char *prefix, uint32_t hash);
static ngx_http_humanhours_node_t *ngx_http_humanhours_cache_node(
    ngx_http_request_t *r, ngx_http_humanhours_cache_t *cache,
    u_char *prefix);
static void ngx_http_humanhours_cache_evict(
    ngx_http_humanhours_cache_t *cache, ngx_uint_t n);
static ngx_int_t ngx_http_humanhours_pending_slot(
    ngx_http_humanhours_node_t *node, u_char *digest, ngx_msec_t now);
static void ngx_http_humanhours_pending_clear(
    ngx_http_humanhours_node_t *node, u_char *digest, ngx_msec_t now);
static void ngx_http_humanhours_rbtree_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_http_humanhours_cache_t *ngx_http_humanhours_cache(
    ngx_http_request_t *r);


ngx_int_t
ngx_http_humanhours_cache_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_humanhours_cache_t  *ocache = data;

    size_t                        len;
    ngx_http_humanhours_cache_t  *cache;

    cache = shm_zone->data;

    /* a reload keeps the cached keys */

    if (ocache) {
        cache->sh = ocache->sh;
        cache->shpool = ocache->shpool;
        return NGX_OK;
    }

    cache->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        cache->sh = cache->shpool->data;
        return NGX_OK;
    }

    cache->sh = ngx_slab_calloc(cache->shpool,
                                sizeof(ngx_http_humanhours_shctx_t));
    if (cache->sh == NULL) {
        return NGX_ERROR;
    }

    cache->shpool->data = cache->sh;

    ngx_rbtree_init(&cache->sh->rbtree, &cache->sh->sentinel,
                    ngx_http_humanhours_rbtree_insert);
    ngx_queue_init(&cache->sh->lru);

    /* the digest key is new for each zone, so digests mean nothing outside */
    randombytes_buf(cache->sh->digest_key, sizeof(cache->sh->digest_key));

    len = sizeof(" in humanhours key cache zone \"\"") + shm_zone->shm.name.len;

    cache->shpool->log_ctx = ngx_slab_alloc(cache->shpool, len);
    if (cache->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(cache->shpool->log_ctx,
                " in humanhours key cache zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full zone is normal: the LRU makes room, and logs if it cannot */
    cache->shpool->log_nomem = 0;

    return NGX_OK;
}


void
ngx_http_humanhours_digest(ngx_http_request_t *r,
    ngx_http_humanhours_ctx_t *ctx)
{
    ngx_http_humanhours_cache_t  *cache;

    cache = ngx_http_humanhours_cache(r);

    crypto_generichash(ctx->digest, sizeof(ctx->digest),
                       ctx->key.data, ctx->key.len,
                       cache->sh->digest_key, sizeof(cache->sh->digest_key));
}


/*
 * Returns NGX_OK for a verified key within its TTL, with the ids copied to
 * ctx. Returns NGX_ABORT for a key that failed verification moments ago,
 * NGX_AGAIN while another request verifies the same key, and NGX_BUSY when
 * the prefix has had its share of verifications of new secrets this second.
 * NGX_DECLINED means that the caller must verify the key, and marks it as
 * being verified until ngx_http_humanhours_cache_store(), _note_failure()
 * or _abandon() is called.
 */

ngx_int_t
ngx_http_humanhours_cache_lookup(ngx_http_request_t *r,
    ngx_http_humanhours_ctx_t *ctx)
{
    ngx_int_t                     rc;
    ngx_uint_t                    i, known;
    ngx_msec_t                    now;
    ngx_http_humanhours_node_t   *node;
    ngx_http_humanhours_cache_t  *cache;

    cache = ngx_http_humanhours_cache(r);
    now = ngx_current_msec;

    ngx_shmtx_lock(&cache->shpool->mutex);

    node = ngx_http_humanhours_cache_find(cache, (u_char *) ctx->parts.prefix,
               ngx_crc32_short((u_char *) ctx->parts.prefix,
                               HH_KEY_PREFIX_LEN));

    known = (node != NULL && node->expires != 0
             && sodium_memcmp(node->digest, ctx->digest, 32) == 0);

    if (known && (ngx_msec_int_t) (node->expires - now) > 0) {
        ctx->key_id = node->key_id;
        ctx->org_id = node->org_id;
        ctx->test = node->test;
        ctx->revoked = node->revoked;

        ngx_queue_remove(&node->queue);
        ngx_queue_insert_head(&cache->sh->lru, &node->queue);

        rc = NGX_OK;
        goto done;
    }

    if (node != NULL && !known
        && (ngx_msec_int_t) (node->bad_expires - now) > 0
        && sodium_memcmp(node->bad_digest, ctx->digest, 32) == 0)
    {
        rc = NGX_ABORT;
        goto done;
    }

    if (node != NULL
        && ngx_http_humanhours_pending_slot(node, ctx->digest, now) >= 0)
    {
        rc = NGX_AGAIN;
        goto done;
    }

    /* a key verified before is re-verified when it expires, never throttled */

    if (node != NULL && !known) {
        if (now - node->window >= 1000) {
            node->window = now;
            node->attempts = 0;
        }

        if (node->attempts >= cache->verify_rate) {
            rc = NGX_BUSY;
            goto done;
        }
    }

    node = ngx_http_humanhours_cache_node(r, cache,
                                          (u_char *) ctx->parts.prefix);
    if (node != NULL) {
        if (!known) {
            if (now - node->window >= 1000) {
                node->window = now;
                node->attempts = 0;
            }

            node->attempts++;
        }

        /*
         * The secret takes a free mark, so that more requests with it wait
         * for this verification. With all marks taken it is verified
         * unmarked, which costs a verification but never a wrong result.
         */

        for (i = 0; i < NGX_HH_PENDING_SLOTS; i++) {
            if ((ngx_msec_int_t) (node->pending_expires[i] - now) <= 0) {
                ngx_memcpy(node->pending_digest[i], ctx->digest, 32);
                node->pending_expires[i] = now + NGX_HH_PENDING_TIMEOUT;
                break;
            }
        }
    }

    rc = NGX_DECLINED;

done:

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return rc;
}


void
ngx_http_humanhours_cache_store(ngx_http_request_t *r,
    ngx_http_humanhours_ctx_t *ctx)
{
    ngx_http_humanhours_node_t   *node;
    ngx_http_humanhours_cache_t  *cache;

    cache = ngx_http_humanhours_cache(r);

    ngx_shmtx_lock(&cache->shpool->mutex);

    node = ngx_http_humanhours_cache_node(r, cache,
                                          (u_char *) ctx->parts.prefix);
    if (node != NULL) {
        ngx_memcpy(node->digest, ctx->digest, 32);
        node->key_id = ctx->key_id;
        node->org_id = ctx->org_id;
        node->test = ctx->test;
        node->revoked = ctx->revoked;
        node->expires = ngx_current_msec + cache->ttl;

        ngx_http_humanhours_pending_clear(node, ctx->digest,
                                          ngx_current_msec);

        if (node->expires == 0) {
            node->expires = 1;
        }
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/* Remembers a key that failed verification for failure_ttl. */

void
ngx_http_humanhours_cache_note_failure(ngx_http_request_t *r,
    ngx_http_humanhours_ctx_t *ctx)
{
    ngx_msec_t                    now;
    ngx_http_humanhours_node_t   *node;
    ngx_http_humanhours_cache_t  *cache;

    cache = ngx_http_humanhours_cache(r);
    now = ngx_current_msec;

    ngx_shmtx_lock(&cache->shpool->mutex);

    node = ngx_http_humanhours_cache_node(r, cache,
                                          (u_char *) ctx->parts.prefix);
    if (node != NULL) {
        ngx_memcpy(node->bad_digest, ctx->digest, 32);
        node->bad_expires = now + cache->failure_ttl;

        ngx_http_humanhours_pending_clear(node, ctx->digest, now);
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/*
 * Ends a verification that could not run. A node for a prefix that never
 * verified is dropped, so that requests with made-up prefixes cannot push
 * real keys out of the cache.
 */

void
ngx_http_humanhours_cache_abandon(ngx_http_request_t *r,
    ngx_http_humanhours_ctx_t *ctx)
{
    ngx_http_humanhours_node_t   *node;
    ngx_http_humanhours_cache_t  *cache;

    cache = ngx_http_humanhours_cache(r);

    ngx_shmtx_lock(&cache->shpool->mutex);

    node = ngx_http_humanhours_cache_find(cache, (u_char *) ctx->parts.prefix,
               ngx_crc32_short((u_char *) ctx->parts.prefix,
                               HH_KEY_PREFIX_LEN));

    if (node != NULL) {
        ngx_http_humanhours_pending_clear(node, ctx->digest,
                                          ngx_current_msec);

        if (node->expires == 0
            && (ngx_msec_int_t) (node->bad_expires - ngx_current_msec) <= 0)
        {
            ngx_queue_remove(&node->queue);
            ngx_rbtree_delete(&cache->sh->rbtree, &node->node);
            ngx_slab_free_locked(cache->shpool, node);
        }
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/* Returns the mark of a secret being verified, or -1. */

static ngx_int_t
ngx_http_humanhours_pending_slot(ngx_http_humanhours_node_t *node,
    u_char *digest, ngx_msec_t now)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HH_PENDING_SLOTS; i++) {
        if ((ngx_msec_int_t) (node->pending_expires[i] - now) > 0
            && sodium_memcmp(node->pending_digest[i], digest, 32) == 0)
        {
            return i;
        }
    }

    return -1;
}


static void
ngx_http_humanhours_pending_clear(ngx_http_humanhours_node_t *node,
    u_char *digest, ngx_msec_t now)
{
    ngx_int_t  i;

    i = ngx_http_humanhours_pending_slot(node, digest, now);

    if (i >= 0) {
        node->pending_expires[i] = now;
    }
}


static ngx_http_humanhours_node_t *
ngx_http_humanhours_cache_find(ngx_http_humanhours_cache_t *cache,
    u_char *prefix, uint32_t hash)
{
    ngx_int_t                    rc;
    ngx_rbtree_node_t           *node, *sentinel;
    ngx_http_humanhours_node_t  *hn;

    node = cache->sh->rbtree.root;
    sentinel = cache->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        hn = (ngx_http_humanhours_node_t *) node;

        rc = ngx_memcmp(prefix, hn->prefix, HH_KEY_PREFIX_LEN);

        if (rc == 0) {
            return hn;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/* Finds or creates the node of a prefix; the zone's mutex must be held. */

static ngx_http_humanhours_node_t *
ngx_http_humanhours_cache_node(ngx_http_request_t *r,
    ngx_http_humanhours_cache_t *cache, u_char *prefix)
{
    uint32_t                     hash;
    ngx_http_humanhours_node_t  *node;

    hash = ngx_crc32_short(prefix, HH_KEY_PREFIX_LEN);

    node = ngx_http_humanhours_cache_find(cache, prefix, hash);
    if (node != NULL) {
        ngx_queue_remove(&node->queue);
        ngx_queue_insert_head(&cache->sh->lru, &node->queue);
        return node;
    }

    node = ngx_slab_calloc_locked(cache->shpool,
                                  sizeof(ngx_http_humanhours_node_t));

    if (node == NULL) {
        ngx_http_humanhours_cache_evict(cache, 16);

        node = ngx_slab_calloc_locked(cache->shpool,
                                      sizeof(ngx_http_humanhours_node_t));
        if (node == NULL) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "humanhours: key prefix %*s not cached, the key "
                          "cache zone is full even after eviction",
                          (size_t) HH_KEY_PREFIX_LEN, prefix);
            return NULL;
        }
    }

    node->node.key = hash;
    ngx_memcpy(node->prefix, prefix, HH_KEY_PREFIX_LEN);

    ngx_rbtree_insert(&cache->sh->rbtree, &node->node);
    ngx_queue_insert_head(&cache->sh->lru, &node->queue);

    return node;
}


/* Drops the n least recently used nodes to make room for a new one. */

static void
ngx_http_humanhours_cache_evict(ngx_http_humanhours_cache_t *cache,
    ngx_uint_t n)
{
    ngx_queue_t                 *q;
    ngx_http_humanhours_node_t  *node;

    while (n-- && !ngx_queue_empty(&cache->sh->lru)) {
        q = ngx_queue_last(&cache->sh->lru);
        node = ngx_queue_data(q, ngx_http_humanhours_node_t, queue);

        ngx_queue_remove(q);
        ngx_rbtree_delete(&cache->sh->rbtree, &node->node);
        ngx_slab_free_locked(cache->shpool, node);

        (void) ngx_atomic_fetch_add(
                   &cache->sh->stats[NGX_HH_STAT_CACHE_EVICTIONS], 1);
    }
}


static void
ngx_http_humanhours_rbtree_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t          **p;
    ngx_http_humanhours_node_t  *hn, *hnt;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            hn = (ngx_http_humanhours_node_t *) node;
            hnt = (ngx_http_humanhours_node_t *) temp;

            p = (ngx_memcmp(hn->prefix, hnt->prefix, HH_KEY_PREFIX_LEN) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


static ngx_http_humanhours_cache_t *
ngx_http_humanhours_cache(ngx_http_request_t *r)
{
    ngx_http_humanhours_main_conf_t  *hmcf;

    hmcf = ngx_http_get_module_main_conf(r, ngx_http_humanhours_module);

    return hmcf->cache_zone->data;
}
