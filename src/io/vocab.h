/* vocab.h - internal interface of tokemb_vocab (vocab.c) for the text formats. */
#ifndef TOKEMB_VOCAB_H
#define TOKEMB_VOCAB_H

#include "table/table.h"

/* Inserts word[0..len) (already validated) and stores its id in *id. Returns 1 if the word was
 * already present (*id = its existing id, nothing added), 0 if added, -1 on allocation failure. */
int tk_vocab_insert(tokemb_vocab *v, const char *word, size_t len, int64_t *id);
/* Reserves room for n words / bytes of text (a hint; returns false on allocation failure). */
bool tk_vocab_reserve(tokemb_vocab *v, size_t n_words, size_t n_bytes);
/* Checks a word for the vocabulary: non-empty, valid UTF-8, no NUL. Returns the offending byte index
 * or SIZE_MAX when fine; *why gets a short reason. */
size_t tk_word_check(const char *word, size_t len, const char **why);

#endif
