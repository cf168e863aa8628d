#include "common/common.h"

#include <stdlib.h>

uint64_t hash_bytes(const void *data, size_t len)
{
  const unsigned char *p = data;
  uint64_t h = 1469598103934665603ULL;

  for (size_t i = 0; i < len; i++) {
    h ^= p[i];
    h *= 1099511628211ULL;
  }
  /* FNV's low bits are weak; buckets are chosen by them. */
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}

void hmap_init(struct hmap *h)
{
  h->nbuckets = 16;
  h->buckets = xcalloc(h->nbuckets, sizeof(*h->buckets));
  h->len = 0;
}

void hmap_destroy(struct hmap *h)
{
  free(h->buckets);
  h->buckets = NULL;
  h->nbuckets = 0;
  h->len = 0;
}

static void grow(struct hmap *h)
{
  size_t n = h->nbuckets * 2;
  struct hmap_node **b = xcalloc(n, sizeof(*b));

  for (size_t i = 0; i < h->nbuckets; i++) {
    struct hmap_node *node = h->buckets[i];

    while (node) {
      struct hmap_node *next = node->next;
      size_t ix = node->hash & (n - 1);

      node->next = b[ix];
      b[ix] = node;
      node = next;
    }
  }
  free(h->buckets);
  h->buckets = b;
  h->nbuckets = n;
}

void hmap_insert(struct hmap *h, struct hmap_node *n, uint64_t hash)
{
  size_t ix;

  if (h->len >= h->nbuckets)
    grow(h);
  ix = hash & (h->nbuckets - 1);
  n->hash = hash;
  n->next = h->buckets[ix];
  h->buckets[ix] = n;
  h->len++;
}

void hmap_remove(struct hmap *h, struct hmap_node *n)
{
  struct hmap_node **pp = &h->buckets[n->hash & (h->nbuckets - 1)];

  while (*pp) {
    if (*pp == n) {
      *pp = n->next;
      n->next = NULL;
      h->len--;
      return;
    }
    pp = &(*pp)->next;
  }
}

struct hmap_node *hmap_first(const struct hmap *h, uint64_t hash)
{
  return h->buckets[hash & (h->nbuckets - 1)];
}
