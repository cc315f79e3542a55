// This level's table: every kernel of kiln_kernel_list.h, by name. A kernel missing from the
// families is a compile error here.
#define KILN_TABLE_FIELD(ret, name, params, args) .name = name,
#define KILN_CAT2(a, b) a##b
#define KILN_CAT(a, b) KILN_CAT2(a, b)
const kiln_kernel_table KILN_CAT(kiln_kernels_, KILN_LEVEL_NAME) = {
    .level = KILN_STRINGIFY(KILN_LEVEL_NAME),
    KILN_KERNEL_LIST(KILN_TABLE_FIELD)
};
#undef KILN_TABLE_FIELD
