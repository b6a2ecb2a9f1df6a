/* schedule.c: the reference's step decay (x0.1 at the start of epochs floor(0.5*E) and
 * floor(0.75*E)) and the setter that applies it to parameter groups.
 * Not torch.optim.lr_scheduler: the reference multiplies group["lr"] by 0.1 by hand. */
#include <math.h>

#include "relate/optim.h"

/* The reference decays inside train() with
 *     if epoch == int(E*0.5) or epoch == int(E*0.75): g["lr"] *= 0.1
 * so a decay happens once per distinct milestone (E = 1 or 2 gives one decay, not two). */
static int decays_before(int epoch, int total_epochs)
{
    int m1 = (int)floor(0.5 * total_epochs);
    int m2 = (int)floor(0.75 * total_epochs);
    int n = epoch >= m1;
    if (m2 != m1)
        n += epoch >= m2;
    return n;
}

double relate_step_decay_factor(int epoch, int total_epochs)
{
    double f = 1.0;
    for (int i = decays_before(epoch, total_epochs); i > 0; i--)
        f *= 0.1;
    return f;
}

void relate_groups_set_lr(relate_param_group *groups, int ngroups, const double *base_lr,
                          double factor)
{
    /* The reference's lr is base*0.1*0.1..., rounded after every product, and it is printed
     * with Python's repr ("Group[0] learning rate: 0.0010000000000000002"); base*factor can
     * differ in the last bit (1e-3*0.01 != 1e-3*0.1*0.1). So a factor that is a power of 0.1
     * is applied the reference's way. */
    double pw = 1.0;
    int k = 0;
    while (k < 64 && pw != factor && pw > factor) {
        pw *= 0.1;
        k++;
    }
    for (int g = 0; g < ngroups; g++) {
        double lr = base_lr[g];
        if (pw == factor) {
            for (int i = 0; i < k; i++)
                lr *= 0.1;
        } else {
            lr *= factor;
        }
        groups[g].lr = lr;
    }
}
