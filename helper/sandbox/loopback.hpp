#pragma once

namespace gpubox {
// Brings `lo` up in the current (new, empty) network namespace. Throws.
void bringUpLoopback();
}  // namespace gpubox
