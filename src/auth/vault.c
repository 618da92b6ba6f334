/*
 * vault: one locked, guarded array of password slots (auth/vault.h) and a
 * stack of the free ones. It must never hand out a slot twice, never give
 * back memory that still holds a password, and never free itself while a
 * slot is out.
 */
#include "auth/vault.h"

#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>

#define VAULT_SLOTS_MAX 65536

struct auth_vault {
	unsigned char *slots; /* sodium_allocarray(slot_count, slot_len) */
	size_t slot_count, slot_len;
	uint32_t *free_stack; /* indexes of the free slots; the top is taken next */
	size_t free_count;
	bool is_closing;
};

static void vault_free(struct auth_vault *v)
{
	if (v->slots != NULL)
		sodium_free(v->slots); /* wipes before it unmaps */
	free(v->free_stack);
	free(v);
}

struct auth_vault *auth_vault_new(size_t slot_count, size_t slot_len, struct error *err)
{
	struct auth_vault *v;

	if (slot_count == 0 || slot_count > VAULT_SLOTS_MAX || slot_len == 0) {
		error_set(err, ERROR_USAGE, "a password vault needs 1 to %d slots of some bytes",
			  VAULT_SLOTS_MAX);
		return NULL;
	}
	v = calloc(1, sizeof(*v));
	if (v == NULL)
		goto oom;
	v->slot_count = slot_count;
	v->slot_len = slot_len;
	v->slots = sodium_allocarray(slot_count, slot_len);
	v->free_stack = calloc(slot_count, sizeof(*v->free_stack));
	if (v->slots == NULL || v->free_stack == NULL)
		goto oom;
	sodium_memzero(v->slots, slot_count * slot_len);
	/* Slot 0 on top: the order is only for the tests to read. */
	for (size_t i = 0; i < slot_count; i++)
		v->free_stack[i] = (uint32_t) (slot_count - 1 - i);
	v->free_count = slot_count;
	return v;
oom:
	if (v != NULL)
		vault_free(v);
	error_set(err, ERROR_TEMPORARY, "out of memory for the password vault");
	return NULL;
}

void *auth_vault_take(struct auth_vault *vault)
{
	if (vault->is_closing || vault->free_count == 0)
		return NULL;
	return vault->slots + (size_t) vault->free_stack[--vault->free_count] * vault->slot_len;
}

bool auth_vault_owns(const struct auth_vault *vault, const void *p)
{
	const unsigned char *c = p;

	return c >= vault->slots && c < vault->slots + vault->slot_count * vault->slot_len;
}

void auth_vault_give(struct auth_vault *vault, void *slot)
{
	size_t index = (size_t) ((unsigned char *) slot - vault->slots) / vault->slot_len;

	sodium_memzero(vault->slots + index * vault->slot_len, vault->slot_len);
	vault->free_stack[vault->free_count++] = (uint32_t) index;
	if (vault->is_closing && vault->free_count == vault->slot_count)
		vault_free(vault);
}

size_t auth_vault_in_use(const struct auth_vault *vault)
{
	return vault->slot_count - vault->free_count;
}

void auth_vault_close(struct auth_vault *vault)
{
	if (vault == NULL)
		return;
	vault->is_closing = true;
	if (vault->free_count == vault->slot_count)
		vault_free(vault);
}
