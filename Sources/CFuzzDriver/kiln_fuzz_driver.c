#include "kiln_fuzz_driver.h"

#ifdef KILN_LIBFUZZER
// libFuzzer's entry for programs that keep their own main (LLVM 11 and later).
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

int kiln_fuzz_run_driver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size)) {
    return LLVMFuzzerRunDriver(argc, argv, callback);
}
#else
int kiln_fuzz_run_driver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size)) {
    (void)argc; (void)argv; (void)callback;
    return -1;
}
#endif
