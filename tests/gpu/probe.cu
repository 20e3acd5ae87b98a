// gpubox-cuda-probe: does CUDA really work here? Run inside and outside a
// sandbox (tests/gpu/run-on-gpu.sh) to compare.
//
// 1. Loads the driver (libcuda.so.1) itself with dlopen and calls cuInit, so
//    a sandbox that lacks the driver library, the device nodes, or the /proc
//    and /sys entries cuInit reads fails with the driver's own error code
//    (CUDA_ERROR_NO_DEVICE, CUDA_ERROR_OPERATING_SYSTEM, ...) rather than as
//    a loader error or the runtime's vaguer "insufficient driver".
// 2. Lists every device: name, UUID (the GPU-... form nvidia-smi prints), PCI
//    bus id.
// 3. On one device (default 0, --device N): a tiled single-precision GEMM,
//    checked against a CPU reference on sampled entries, and a
//    device-to-device copy bandwidth test, checked in full.
// Last line: "probe: ok devices=N gemm_gflops=X bw_gbps=Y", exit 0; on any
// failure "probe: FAIL: <what>: <CUDA error name>: <message>", exit non-zero.
#include <cuda.h>
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

// Exit codes: 1 CUDA error, 2 no driver library, 3 wrong results, 4 usage.
[[noreturn]] void fail(int code, const std::string& message) {
  std::fprintf(stderr, "probe: FAIL: %s\n", message.c_str());
  std::fflush(stdout);
  std::exit(code);
}

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    fail(1, std::string(what) + ": " + cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
}
#define CHECK(call) check((call), #call)

// --- driver API through dlopen ---------------------------------------------

struct Driver {
  void* handle = nullptr;
  CUresult (*init)(unsigned) = nullptr;
  CUresult (*driverGetVersion)(int*) = nullptr;
  CUresult (*deviceGetCount)(int*) = nullptr;
  CUresult (*getErrorName)(CUresult, const char**) = nullptr;
  CUresult (*getErrorString)(CUresult, const char**) = nullptr;

  template <typename F>
  void resolve(F& fn, const char* name) {
    fn = reinterpret_cast<F>(dlsym(handle, name));
    if (!fn) fail(2, std::string("libcuda.so.1 lacks ") + name + " (a broken driver install?)");
  }

  // "NAME (N): message". cuGetErrorName itself can fail (the toolkit's stub
  // libcuda answers everything with CUDA_ERROR_STUB_LIBRARY), so the codes
  // one meets in sandboxes are also named here.
  std::string describe(CUresult r) const {
    const char* name = nullptr;
    const char* text = nullptr;
    if (getErrorName(r, &name) != CUDA_SUCCESS || getErrorString(r, &text) != CUDA_SUCCESS) {
      switch (r) {
        case CUDA_ERROR_STUB_LIBRARY:
          name = "CUDA_ERROR_STUB_LIBRARY";
          text = "libcuda.so.1 is the toolkit's stub, not the real driver";
          break;
        case CUDA_ERROR_NO_DEVICE:
          name = "CUDA_ERROR_NO_DEVICE";
          text = "no CUDA-capable device is detected";
          break;
        case CUDA_ERROR_SYSTEM_DRIVER_MISMATCH:
          name = "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH";
          text = "libcuda does not match the kernel driver's version";
          break;
        case CUDA_ERROR_OPERATING_SYSTEM:
          name = "CUDA_ERROR_OPERATING_SYSTEM";
          text = "an OS call failed (missing /proc/driver/nvidia or /sys entries?)";
          break;
        default:
          name = "CUDA_ERROR_UNKNOWN";
          text = "unknown error";
      }
    }
    return std::string(name) + " (" + std::to_string(int(r)) + "): " + text;
  }
};

Driver loadDriver() {
  Driver d;
  d.handle = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!d.handle)
    fail(2, std::string("Found no NVIDIA driver: cannot load libcuda.so.1 (") + dlerror() + ")");
  d.resolve(d.init, "cuInit");
  d.resolve(d.driverGetVersion, "cuDriverGetVersion");
  d.resolve(d.deviceGetCount, "cuDeviceGetCount");
  d.resolve(d.getErrorName, "cuGetErrorName");
  d.resolve(d.getErrorString, "cuGetErrorString");
  return d;
}

// --- GEMM ---------------------------------------------------------------------

constexpr int kTile = 32;

// C = A * B, all n x n row-major, n a multiple of kTile. Each block computes
// one kTile x kTile tile of C from tiles staged in shared memory.
__global__ void gemmKernel(const float* a, const float* b, float* c, int n) {
  __shared__ float as[kTile][kTile];
  __shared__ float bs[kTile][kTile];
  const int row = blockIdx.y * kTile + threadIdx.y;
  const int col = blockIdx.x * kTile + threadIdx.x;
  float sum = 0.0f;
  for (int t = 0; t < n; t += kTile) {
    as[threadIdx.y][threadIdx.x] = a[row * n + t + threadIdx.x];
    bs[threadIdx.y][threadIdx.x] = b[(t + threadIdx.y) * n + col];
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kTile; ++k) sum += as[threadIdx.y][k] * bs[k][threadIdx.x];
    __syncthreads();
  }
  c[row * n + col] = sum;
}

__global__ void fillPattern(uint32_t* p, size_t count) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < count;
       i += size_t(gridDim.x) * blockDim.x)
    p[i] = uint32_t(i) * 2654435761u;
}

struct Timer {
  cudaEvent_t start{}, stop{};
  Timer() {
    CHECK(cudaEventCreate(&start));
    CHECK(cudaEventCreate(&stop));
  }
  ~Timer() {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
  }
  void begin() { CHECK(cudaEventRecord(start)); }
  double seconds() {
    CHECK(cudaEventRecord(stop));
    CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    CHECK(cudaEventElapsedTime(&ms, start, stop));
    return ms / 1e3;
  }
};

// Device buffer owner, so every exit path frees it.
template <typename T>
struct DeviceBuffer {
  T* ptr = nullptr;
  explicit DeviceBuffer(size_t count) { CHECK(cudaMalloc(&ptr, count * sizeof(T))); }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

double runGemm() {
  constexpr int n = 1024;
  constexpr int iterations = 20;
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> a(size_t(n) * n), b(size_t(n) * n), c(size_t(n) * n);
  for (auto& x : a) x = dist(rng);
  for (auto& x : b) x = dist(rng);

  DeviceBuffer<float> da(a.size()), db(b.size()), dc(c.size());
  CHECK(cudaMemcpy(da.ptr, a.data(), a.size() * sizeof(float), cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(db.ptr, b.data(), b.size() * sizeof(float), cudaMemcpyHostToDevice));
  const dim3 block(kTile, kTile), grid(n / kTile, n / kTile);
  gemmKernel<<<grid, block>>>(da.ptr, db.ptr, dc.ptr, n);  // warm-up (and JIT, if any)
  CHECK(cudaGetLastError());
  CHECK(cudaDeviceSynchronize());

  Timer timer;
  timer.begin();
  for (int i = 0; i < iterations; ++i) gemmKernel<<<grid, block>>>(da.ptr, db.ptr, dc.ptr, n);
  CHECK(cudaGetLastError());
  const double seconds = timer.seconds();
  CHECK(cudaMemcpy(c.data(), dc.ptr, c.size() * sizeof(float), cudaMemcpyDeviceToHost));

  // Reference on sampled entries, in double; the tolerance scales with the
  // magnitude of the terms summed (float accumulation over n products).
  std::uniform_int_distribution<int> pick(0, n - 1);
  for (int s = 0; s < 256; ++s) {
    const int i = pick(rng), j = pick(rng);
    double ref = 0, mag = 0;
    for (int k = 0; k < n; ++k) {
      ref += double(a[size_t(i) * n + k]) * b[size_t(k) * n + j];
      mag += std::fabs(double(a[size_t(i) * n + k]) * b[size_t(k) * n + j]);
    }
    const double got = c[size_t(i) * n + j];
    if (std::fabs(got - ref) > 1e-4 * mag + 1e-5) {
      char msg[160];
      std::snprintf(msg, sizeof msg, "GEMM result wrong at (%d,%d): got %.6f, expected %.6f", i, j,
                    got, ref);
      fail(3, msg);
    }
  }
  const double gflops = 2.0 * n * n * double(n) * iterations / seconds / 1e9;
  std::printf("gemm: %dx%d float, %d runs, %.3f ms each, %.1f GFLOP/s, 256 samples checked\n", n, n,
              iterations, seconds * 1e3 / iterations, gflops);
  return gflops;
}

double runBandwidth(size_t totalMem) {
  // 256 MiB per buffer, less on small GPUs; two buffers.
  size_t bytes = size_t(256) << 20;
  while (bytes * 4 > totalMem && bytes > (size_t(16) << 20)) bytes /= 2;
  const size_t count = bytes / sizeof(uint32_t);
  constexpr int iterations = 20;

  DeviceBuffer<uint32_t> src(count), dst(count);
  fillPattern<<<1024, 256>>>(src.ptr, count);
  CHECK(cudaGetLastError());
  CHECK(cudaMemset(dst.ptr, 0, bytes));
  CHECK(cudaMemcpy(dst.ptr, src.ptr, bytes, cudaMemcpyDeviceToDevice));  // warm-up
  CHECK(cudaDeviceSynchronize());

  Timer timer;
  timer.begin();
  for (int i = 0; i < iterations; ++i)
    CHECK(cudaMemcpyAsync(dst.ptr, src.ptr, bytes, cudaMemcpyDeviceToDevice));
  const double seconds = timer.seconds();

  std::vector<uint32_t> host(count);
  CHECK(cudaMemcpy(host.data(), dst.ptr, bytes, cudaMemcpyDeviceToHost));
  for (size_t i = 0; i < count; ++i)
    if (host[i] != uint32_t(i) * 2654435761u)
      fail(3, "device-to-device copy corrupted word " + std::to_string(i));
  // Each copy reads and writes BYTES, counted both ways as the CUDA samples'
  // bandwidthTest does.
  const double gbps = 2.0 * double(bytes) * iterations / seconds / 1e9;
  std::printf("bandwidth: device-to-device %zu MiB x %d, %.1f GB/s (read+write), verified\n",
              bytes >> 20, iterations, gbps);
  return gbps;
}

std::string formatUuid(const cudaUUID_t& uuid) {
  const auto* b = reinterpret_cast<const unsigned char*>(uuid.bytes);
  char s[64];
  std::snprintf(s, sizeof s,
                "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
                b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
                b[14], b[15]);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  int device = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
      device = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--device N]\n", argv[0]);
      return 4;
    }
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);

  const Driver driver = loadDriver();
  if (const CUresult r = driver.init(0); r != CUDA_SUCCESS)
    fail(1, "cuInit: " + driver.describe(r));
  int driverVersion = 0, count = 0;
  if (const CUresult r = driver.driverGetVersion(&driverVersion); r != CUDA_SUCCESS)
    fail(1, "cuDriverGetVersion: " + driver.describe(r));
  if (const CUresult r = driver.deviceGetCount(&count); r != CUDA_SUCCESS)
    fail(1, "cuDeviceGetCount: " + driver.describe(r));
  std::printf("driver: CUDA %d.%d, %d device(s)\n", driverVersion / 1000,
              (driverVersion % 1000) / 10, count);
  if (count == 0) fail(1, "cuDeviceGetCount: CUDA_ERROR_NO_DEVICE: no CUDA-capable device");

  int runtimeCount = 0;
  CHECK(cudaGetDeviceCount(&runtimeCount));
  cudaDeviceProp chosen{};
  for (int i = 0; i < runtimeCount; ++i) {
    cudaDeviceProp p{};
    CHECK(cudaGetDeviceProperties(&p, i));
    std::printf("device %d: %s, %s, PCI %08x:%02x:%02x.0, sm_%d%d, %zu MiB\n", i, p.name,
                formatUuid(p.uuid).c_str(), p.pciDomainID, p.pciBusID, p.pciDeviceID, p.major,
                p.minor, p.totalGlobalMem >> 20);
    if (i == device) chosen = p;
  }
  if (device < 0 || device >= runtimeCount)
    fail(4, "--device " + std::to_string(device) + ": only " + std::to_string(runtimeCount) +
                " device(s)");
  CHECK(cudaSetDevice(device));

  const double gflops = runGemm();
  const double gbps = runBandwidth(chosen.totalGlobalMem);
  std::printf("probe: ok devices=%d gemm_gflops=%.1f bw_gbps=%.1f\n", runtimeCount, gflops, gbps);
  return 0;
}
