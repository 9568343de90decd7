/* train_classifier.c - trains the synthetic sentiment classifier of demo_train.c with each of tokemb's
 * fused sparse optimizers and checks the seed article's claim (registered as a ctest test):
 *  - the loss falls (last 20 steps' mean < half the first 20 steps'),
 *  - at initialisation sentiment words of the same class are NOT closer than words of different
 *    classes (cosine separation < 0.15), after training they are (separation > 0.3),
 *  - held-out accuracy > 90%.
 * Exit status 0 on success, 1 on a failed check. */
#include "demo_sections.h"

#include <stdio.h>
#include <tokemb.h>

int main(void) {
    static const struct {
        int32_t kind;
        const char *name;
    } kinds[] = {{TOKEMB_OPTIM_SGD, "SGD"},
                 {TOKEMB_OPTIM_ROWWISE_ADAGRAD, "row-wise Adagrad"},
                 {TOKEMB_OPTIM_ADAGRAD, "Adagrad"},
                 {TOKEMB_OPTIM_SPARSE_ADAM, "SparseAdam"}};
    int failed = 0;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        train_result r;
        if (train_classifier_run(400, kinds[k].kind, 0, &r) != 0) return 1;
        int ok_loss = r.loss_last < 0.5 * r.loss_first;
        int ok_init = r.sep_init < 0.15;
        int ok_final = r.sep_final > 0.3;
        int ok_acc = r.accuracy > 0.9;
        printf("%-17s loss %.3f -> %.3f  cos same/diff: init %+.3f/%+.3f  trained %+.3f/%+.3f  acc %.1f%%  %s\n",
               kinds[k].name, r.loss_first, r.loss_last, r.same_init, r.diff_init, r.same_final, r.diff_final,
               100.0 * r.accuracy, ok_loss && ok_init && ok_final && ok_acc ? "ok" : "FAILED");
        failed |= !(ok_loss && ok_init && ok_final && ok_acc);
    }
    return failed ? 1 : 0;
}
