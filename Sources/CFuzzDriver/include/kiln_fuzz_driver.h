#ifndef KILN_FUZZ_DRIVER_H
#define KILN_FUZZ_DRIVER_H
#include <stddef.h>
#include <stdint.h>

/// Runs libFuzzer's driver (LLVMFuzzerRunDriver) over `callback` when built with
/// -DKILN_LIBFUZZER and -fsanitize=fuzzer; returns -1 in an ordinary build.
int kiln_fuzz_run_driver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
