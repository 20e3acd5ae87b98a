// Pure parsers of the driver's text files: no files, no root.
#include <gtest/gtest.h>

#include <string>

#include "error.hpp"
#include "mig.hpp"
#include "proc_info.hpp"
#include "text_file.hpp"

using namespace gpubox::gpu;

TEST(ProcInfo, ParsesRealInformationLayout) {
  const char* text =
      "Model: \t\t NVIDIA H100 80GB HBM3\n"
      "IRQ:   \t\t 140\n"
      "GPU UUID: \t GPU-8c8d3a8e-1a5b-2c3d-4e5f-60718293a4b5\n"
      "Video BIOS: \t 96.00.99.00.01\n"
      "Bus Type: \t PCIe\n"
      "DMA Size: \t 52 bits\n"
      "DMA Mask: \t 0xfffffffffffff\n"
      "Bus Location: \t 0000:3B:00.0\n"
      "Device Minor: \t 3\n"
      "GPU Excluded:\t No\n";
  GpuInfo info = parseInformation(text, "information");
  EXPECT_EQ(info.minor, 3u);
  EXPECT_EQ(info.uuid, "GPU-8c8d3a8e-1a5b-2c3d-4e5f-60718293a4b5");
  EXPECT_EQ(info.model, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(info.busId, "0000:3b:00.0");  // lowercased, as in sysfs
  EXPECT_FALSE(info.excluded);
}

TEST(ProcInfo, PlaceholderUuidIsDropped) {
  GpuInfo info = parseInformation(
      "GPU UUID: \t " + std::string(8, '?') + "-" + std::string(4, '?') + "\nDevice Minor: 0\n",
      "f");
  EXPECT_EQ(info.uuid, "");
  info = parseInformation("GPU UUID: GPU-12/../x\nDevice Minor: 0\n", "f");
  EXPECT_EQ(info.uuid, "");
}

TEST(ProcInfo, ExcludedGpu) {
  EXPECT_TRUE(parseInformation("Device Minor: 1\nGPU Excluded:\t Yes\n", "f").excluded);
}

TEST(ProcInfo, MalformedInformationThrowsNamingTheFile) {
  for (const char* bad :
       {"", "Model: x\n", "Device Minor: -1\n", "Device Minor: 254\n", "Device Minor: 12abc\n",
        "Device Minor: 99999999999999\n", "Device Minor: 0\nBus Location: 0000:3b:00\n",
        "Device Minor: 0\nBus Location: ../../etc\n"}) {
    try {
      parseInformation(bad, "/r/proc/driver/nvidia/gpus/x/information");
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const gpubox::Error& e) {
      EXPECT_NE(std::string(e.what()).find("/r/proc/driver/nvidia/gpus/x/information"),
                std::string::npos);
    }
  }
}

TEST(ProcInfo, GarbageNeverCrashes) {
  std::string junk;
  for (int i = 0; i < 4096; ++i) junk += static_cast<char>((i * 131) % 256);
  EXPECT_THROW(parseInformation(junk, "f"), gpubox::Error);
  EXPECT_THROW(parseDriverVersion(junk, "f"), gpubox::Error);
  parseCharMajors(junk);
  paramsWithoutModifyDeviceFiles(junk);
}

TEST(ProcInfo, BusIds) {
  EXPECT_TRUE(isValidBusId("0000:3b:00.0"));
  EXPECT_TRUE(isValidBusId("00000000:3B:00.7"));
  EXPECT_FALSE(isValidBusId("0000:3b:00.8"));
  EXPECT_FALSE(isValidBusId("0000:3b:00"));
  EXPECT_FALSE(isValidBusId("000:3b:00.0"));
  EXPECT_FALSE(isValidBusId("0000:3b:00.0/.."));
  EXPECT_FALSE(isValidBusId(""));
}

TEST(ProcInfo, DriverVersionProprietaryAndOpenModules) {
  EXPECT_EQ(parseDriverVersion("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu "
                               "Feb 22 01:44:30 UTC 2024\nGCC version:  gcc version 12.2.0\n",
                               "v"),
            "550.54.14");
  EXPECT_EQ(parseDriverVersion("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  "
                               "535.183.01  Release Build  (dvs-builder@U16)  Sun May 12\n",
                               "v"),
            "535.183.01");
  EXPECT_THROW(parseDriverVersion("GCC version: 12.2.0\n", "v"), gpubox::Error);
  // Only digits and dots: a version is used in file names.
  EXPECT_THROW(parseDriverVersion("NVRM version: NVIDIA Kernel Module ../1.2\n", "v"),
               gpubox::Error);
}

TEST(ProcInfo, CharMajorsIgnoreBlockDevices) {
  auto m = parseCharMajors(
      "Character devices:\n  1 mem\n195 nvidia-frontend\n510 nvidia-caps\n511 nvidia-uvm\n\n"
      "Block devices:\n  8 sd\n 77 nvidia-uvm-block\n");
  EXPECT_EQ(m.at("nvidia-uvm"), 511u);
  EXPECT_EQ(m.at("nvidia-caps"), 510u);
  EXPECT_EQ(m.at("nvidia-frontend"), 195u);
  EXPECT_EQ(m.count("sd"), 0u);
  EXPECT_EQ(m.count("nvidia-uvm-block"), 0u);
}

TEST(ProcInfo, ParamsGetModifyDeviceFilesZero) {
  std::string out =
      paramsWithoutModifyDeviceFiles("RmLogonRC: 1\nModifyDeviceFiles: 1\nDeviceFileMode: 438\n");
  EXPECT_EQ(out, "RmLogonRC: 1\nModifyDeviceFiles: 0\nDeviceFileMode: 438\n");
  // Added when the driver did not list it, so the sandbox never gets 1.
  EXPECT_EQ(paramsWithoutModifyDeviceFiles("RmLogonRC: 1\n"),
            "RmLogonRC: 1\nModifyDeviceFiles: 0\n");
}

TEST(ProcInfo, MigDeviceFileMinor) {
  EXPECT_EQ(parseDeviceFileMinor("DeviceFileMinor: 12\nDeviceFileMode: 292\n", "a"), 12u);
  EXPECT_THROW(parseDeviceFileMinor("DeviceFileMode: 292\n", "a"), gpubox::Error);
  EXPECT_THROW(parseDeviceFileMinor("DeviceFileMinor: x\n", "a"), gpubox::Error);
}

TEST(TextFile, RootJoinAndStrip) {
  EXPECT_EQ(underRoot("/", "dev/nvidia0"), "/dev/nvidia0");
  EXPECT_EQ(underRoot("/tmp/r", "dev/nvidia0"), "/tmp/r/dev/nvidia0");
  EXPECT_EQ(stripRoot("/tmp/r", "/tmp/r/usr/lib/libcuda.so.1"), "/usr/lib/libcuda.so.1");
  EXPECT_EQ(stripRoot("/tmp/r", "/tmp/rx/usr/lib"), std::nullopt);
  EXPECT_EQ(stripRoot("/", "/usr/lib/x"), "/usr/lib/x");
}

TEST(TextFile, RefusesNonRegularAndOversizedFiles) {
  EXPECT_EQ(readSmallFile("/nonexistent/gpubox/file"), std::nullopt);
  EXPECT_THROW(readSmallFile("/dev/null"), gpubox::Error);  // not a regular file
  EXPECT_THROW(readSmallFile("/"), gpubox::Error);
  // procfs reports size 0: the cap is enforced while reading.
  EXPECT_THROW(readSmallFile("/proc/self/status", 16), gpubox::Error);
  EXPECT_TRUE(readSmallFile("/proc/self/status").has_value());
}
