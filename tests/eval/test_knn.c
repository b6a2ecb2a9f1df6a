/* test_knn.c: relate_knn_classify against tools/golden_knn.py (PyTorch 1.13 computing the
 * InstDisc weighted kNN on synthetic features): every test row's first-ranked class and the
 * top-1 / top-5 accuracies, for k below, at and above the training set's size, two temperatures
 * and 4-100 classes; 100 % on separable data; argument checks. Retrieval: every query's ten most
 * similar rows in order, precision@10 and mAP@10, against the same golden. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relate/knn.h"
#include "test_util.h"

static int32_t *labels_of(const float *f, int64_t n)
{
    int32_t *y = malloc((size_t)n * sizeof *y);
    for (int64_t i = 0; i < n; i++)
        y[i] = (int32_t)f[i];
    return y;
}

static void check_case(const relate_safetensors *st, const char *name)
{
    char key[96];
    snprintf(key, sizeof key, "%s/params", name);
    const float *p = relate_test_golden(st, key, 3);
    const int k = (int)p[0], classes = (int)p[2];
    const relate_st_tensor *t;
    snprintf(key, sizeof key, "%s/train", name);
    CHECK((t = relate_safetensors_find(st, key)) != NULL);
    const int64_t ntrain = t->shape[0];
    const int d = (int)t->shape[1];
    const float *train = relate_test_golden(st, key, ntrain * d);
    snprintf(key, sizeof key, "%s/test", name);
    CHECK((t = relate_safetensors_find(st, key)) != NULL);
    const int64_t ntest = t->shape[0];
    const float *test = relate_test_golden(st, key, ntest * d);
    snprintf(key, sizeof key, "%s/train_labels", name);
    int32_t *ytr = labels_of(relate_test_golden(st, key, ntrain), ntrain);
    snprintf(key, sizeof key, "%s/test_labels", name);
    int32_t *yte = labels_of(relate_test_golden(st, key, ntest), ntest);
    snprintf(key, sizeof key, "%s/pred", name);
    int32_t *want = labels_of(relate_test_golden(st, key, ntest), ntest);
    snprintf(key, sizeof key, "%s/acc", name);
    const float *acc = relate_test_golden(st, key, 2);

    relate_knn_options o = {.k = k, .temperature = p[1]};
    int32_t *pred = malloc((size_t)ntest * sizeof *pred);
    double top1, top5;
    relate_error err = {0};
    CHECK_MSG(relate_knn_classify(train, ytr, ntrain, test, yte, ntest, d, classes, &o, pred, &top1, &top5, &err) ==
                  RELATE_OK,
              "%s: %s", name, err.msg);
    int64_t differ = 0;
    for (int64_t i = 0; i < ntest; i++)
        differ += pred[i] != want[i];
    CHECK_MSG(differ == 0, "%s: %lld of %lld predictions differ from PyTorch's", name, (long long)differ,
              (long long)ntest);
    CHECK_MSG(fabs(top1 - acc[0]) < 1e-3 && fabs(top5 - acc[1]) < 1e-3, "%s: top-1 %.4f top-5 %.4f, PyTorch %.4f %.4f",
              name, top1, top5, acc[0], acc[1]);
    printf("%s (k=%d, T=%g, %d classes): top-1 %.2f%%, top-5 %.2f%%, all %lld predictions as PyTorch's\n", name, k,
           o.temperature, classes, top1, top5, (long long)ntest);

    /* Retrieval: the same rows as database (training) and queries (test). */
    snprintf(key, sizeof key, "%s/retrieval", name);
    const float *rv = relate_test_golden(st, key, 3);
    const int R = (int)rv[0];
    snprintf(key, sizeof key, "%s/retrieval_top", name);
    const float *rtop = relate_test_golden(st, key, ntest * R);
    int64_t *got = malloc((size_t)(ntest * R) * sizeof *got);
    double prec, map;
    memset(&err, 0, sizeof err);
    CHECK_MSG(relate_retrieve(train, ytr, ntrain, test, yte, ntest, d, R, got, &prec, &map, &err) == RELATE_OK, "%s",
              err.msg);
    int64_t wrong = 0;
    for (int64_t i = 0; i < ntest * R; i++)
        wrong += got[i] != (int64_t)rtop[i];
    CHECK_MSG(wrong == 0, "%s: %lld of %lld retrieved indices differ from PyTorch's", name, (long long)wrong,
              (long long)(ntest * R));
    CHECK_MSG(fabs(prec - rv[1]) < 1e-3 && fabs(map - rv[2]) < 1e-3,
              "%s: precision@%d %.4f mAP@%d %.4f, PyTorch %.4f %.4f", name, R, prec, R, map, rv[1], rv[2]);
    printf("%s: precision@%d %.2f%%, mAP@%d %.2f%%, every ranking as PyTorch's\n", name, R, prec, R, map);
    free(got);
    free(ytr);
    free(yte);
    free(want);
    free(pred);
}

int main(void)
{
    relate_safetensors st;
    relate_test_open_golden(&st, "knn.safetensors");
    const char *cases[] = {"small_k20", "k200_t007", "k_over_n", "hundred", "separable"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(&st, cases[i]);
    /* The separable case is the floor of any kNN: 100 % (the golden says so too). */
    const float *acc = relate_test_golden(&st, "separable/acc", 2);
    CHECK(acc[0] == 100.0f);

    /* A hand-made case: two clusters on the unit circle. */
    const float one[2] = {1, 0}, two[2] = {0, 1};
    float train[8] = {1, 0, 0.9f, 0.1f, 0, 1, 0.1f, 0.9f};
    int32_t ytr[4] = {0, 0, 1, 1}, yte[2] = {0, 1}, bad[2] = {0, 5};
    float test[4];
    memcpy(test, one, sizeof one);
    memcpy(test + 2, two, sizeof two);
    double t1, t5;
    relate_error err = {0};
    relate_knn_options o = {.k = 2, .temperature = 0.1};
    CHECK(relate_knn_classify(train, ytr, 4, test, yte, 2, 2, 2, &o, NULL, &t1, &t5, &err) == RELATE_OK);
    CHECK(t1 == 100.0 && t5 == 100.0);
    /* Labels outside [0, classes) and empty inputs are refused with a message. */
    CHECK(relate_knn_classify(train, ytr, 4, test, bad, 2, 2, 2, &o, NULL, &t1, &t5, &err) == RELATE_ERR_ARG);
    CHECK(strstr(err.msg, "test label 5") != NULL);
    memset(&err, 0, sizeof err);
    o.temperature = 0;
    CHECK(relate_knn_classify(train, ytr, 4, test, yte, 2, 2, 2, &o, NULL, &t1, &t5, &err) == RELATE_ERR_ARG);
    relate_safetensors_close(&st);
    return relate_test_finish();
}
