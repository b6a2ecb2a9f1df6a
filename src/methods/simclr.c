/* simclr.c: the simclr baseline of spec 3 — not built yet: creating it fails with a message that says
 * so (the registry lists it so that --method=simclr is recognised). */
#include "methods/method_internal.h"

static relate_status not_built(relate_method *m, relate_error *err)
{
    (void)m;
    return relate_error_set(err, RELATE_ERR_ARG,
                            "method 'simclr' is not built yet in this release (built: relationnet, standard, randomweights)");
}

const relate_method_ops relate_method_simclr = {.name = "simclr", .init = not_built};
