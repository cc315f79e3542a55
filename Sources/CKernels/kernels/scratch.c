// The per-thread scratch of every convolution kernel (kiln_scratch_layout in kiln_types.h):
// one definition, read by the compiler (to size the scratch) and by the runtime (to find
// the parts).

// Images a weight-gradient worker takes at once: enough for ~512 positions per product.
static int weight_grad_group(int batch, int positions) {
    int g = 512 / (positions > 1 ? positions : 1);
    if (g > 8) g = 8;
    if (g > batch) g = batch;
    return g > 1 ? g : 1;
}

static kiln_scratch_layout conv_scratch(kiln_conv_geometry g, int algorithm, int pass, int batch) {
    kiln_scratch_layout s = {0, 0, 0, 1};
    const long k = (long)g.C * g.KH * g.KW, p = (long)g.OH * g.OW;
    if (pass != KILN_CONV_GRAD_WEIGHT) {
        switch (algorithm) {
        case KILN_CONV_IM2COL: s.total = k * p; break;                       // one image's columns
        case KILN_CONV_DIRECT: s.total = (long)g.C * conv_shift_plane(g); break;  // the padded image
        case KILN_CONV_WINOGRAD: s.total = winograd_scratch(g); break;
        case KILN_CONV_INT8:
            // The quantized image (shared: worker 0's), then each worker's offsets and chunk.
            s.second = (long)((qconv_source_bytes(g) + 63) / 64 * 16);
            s.total = s.second + (long)((qconv_chunk_bytes(g) + 63) / 64 * 16);
            break;
        case KILN_CONV_BF16:
            s.second = (long)((bconv_source_bytes(g) + 63) / 64 * 16);
            s.total = s.second + (long)((bconv_chunk_bytes(g) + 63) / 64 * 16);
            break;
        case KILN_CONV_DEPTHWISE: s.total = pass == KILN_CONV_FORWARD ? depthwise_scratch(g) : k * p; break;
        default: s.total = pass == KILN_CONV_GRAD_DATA ? k * p : 0; break;  // Wᵀ·dy columns
        }
        return s;
    }
    const long acc = (long)g.M * k;
    s.second = acc;
    switch (algorithm) {
    case KILN_CONV_WINOGRAD:
        s.third = acc + 16L * g.C * g.M;  // dU [16][C][M]
        s.total = s.third + winograd_wgrad_scratch(g);
        break;
    case KILN_CONV_DIRECT: {
        const long q = (long)g.OH * (g.W + g.PW + g.PWE);
        s.group = weight_grad_group(batch, (int)q);
        s.third = acc + (long)s.group * g.C * conv_shift_plane(g);  // padded images
        s.total = s.third + (long)s.group * g.M * q;                // dy on the padded grid
        break;
    }
    default:
        s.group = weight_grad_group(batch, (int)p);
        s.third = acc + (long)s.group * k * p;  // patches, images side by side
        s.total = s.third + (long)s.group * g.M * p;
        break;
    }
    return s;
}
