/* demo_sections.h - sections of tokemb-demo that live in their own files, and the shared training
 * example core (examples/demo_train.c) that examples/train_classifier.c also runs. */
#ifndef TOKEMB_DEMO_SECTIONS_H
#define TOKEMB_DEMO_SECTIONS_H

#include <stdint.h>

/* Prints the "the table is learned" section: trains the sentiment classifier of
 * examples/train_classifier.c for a short run and prints loss and word-cosine before/after. */
void demo_training_section(void);

/* Prints the positional section: the seed's positional_encoding(10, 512) and the RoPE relative-position
 * property (examples/demo_posenc.c). */
void demo_positional_section(void);

/* Prints the "pretrained vectors" section: cosine neighbours in examples/data/tiny.vec, a small fastText
 * model (examples/demo_io.c; TOKEMB_DEMO_DATA in the environment overrides the data folder). */
void demo_neighbours_section(void);

/* Result of one training run of the synthetic sentiment classifier. */
typedef struct {
    double loss_first, loss_last; /* mean cross-entropy of the first / last 20 steps */
    double sep_init, sep_final;   /* mean cosine(same class) - mean cosine(different class) */
    double same_init, diff_init, same_final, diff_final;
    double accuracy; /* on a fresh held-out set, after training */
} train_result;

/* Trains for `steps` mini-batches of 32 sentences with the given optimizer kind (enum
 * tokemb_optim_kind) and fills *res. Returns 0, or a negative tokemb status on failure (message
 * printed to stderr). verbose > 0 prints progress every `verbose` steps. */
int train_classifier_run(int steps, int32_t optim_kind, int verbose, train_result *res);

#endif
