"""Corner bit patterns the fp block tests share (PE, adder, vector unit)."""

# fp16: +-0, smallest/largest subnormal, smallest normal, +-1, 1+ulp, +-max, +-inf, qNaN, sNaN,
# -qNaN, 0.5, a mid subnormal
F16_CORNERS = [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x3C00, 0xBC00, 0x3C01, 0x7BFF,
               0xFBFF, 0x7C00, 0xFC00, 0x7E00, 0x7C01, 0xFE00, 0x3800, 0x0200]
# fp32: +-0, subnormals, smallest normal, +-1, 1 + ulp, 2^-24 (a tie against 1), +-max finite,
# 2^127, +-inf, qNaN, sNaN, -NaN with payload, 2^24, 1 - ulp
F32_CORNERS = [0x00000000, 0x80000000, 0x00000001, 0x80000001, 0x007FFFFF, 0x00800000,
               0x80800000, 0x3F800000, 0xBF800000, 0x3F800001, 0x33800000, 0x33800001,
               0xB3800000, 0x34000000, 0x7F7FFFFF, 0xFF7FFFFF, 0x7F000000, 0x7F800000,
               0xFF800000, 0x7FC00000, 0x7F800001, 0xFFC00001, 0x4B800000, 0x3F7FFFFF]
