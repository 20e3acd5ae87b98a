#include "proc_info.hpp"

#include <cctype>

#include "error.hpp"
#include "text_file.hpp"

namespace gpubox::gpu {

namespace {

bool isHex(std::string_view s) {
  for (char c : s)
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  return !s.empty();
}

bool isVersion(std::string_view s) {
  // digits(.digits)+, e.g. 550.54.14 or 535.183.01; bounded length.
  if (s.empty() || s.size() > 32 || s.front() == '.' || s.back() == '.') return false;
  bool dot = false;
  char prev = 0;
  for (char c : s) {
    if (c == '.') {
      if (prev == '.') return false;
      dot = true;
    } else if (c < '0' || c > '9') {
      return false;
    }
    prev = c;
  }
  return dot;
}

}  // namespace

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool isValidBusId(std::string_view bus) {
  // domain:bus:device.function
  size_t c1 = bus.find(':');
  if (c1 == std::string_view::npos) return false;
  size_t c2 = bus.find(':', c1 + 1);
  if (c2 == std::string_view::npos) return false;
  size_t dot = bus.find('.', c2 + 1);
  if (dot == std::string_view::npos) return false;
  std::string_view dom = bus.substr(0, c1), b = bus.substr(c1 + 1, c2 - c1 - 1),
                   dev = bus.substr(c2 + 1, dot - c2 - 1), fn = bus.substr(dot + 1);
  return (dom.size() == 4 || dom.size() == 8) && isHex(dom) && b.size() == 2 && isHex(b) &&
         dev.size() == 2 && isHex(dev) && fn.size() == 1 && fn[0] >= '0' && fn[0] <= '7';
}

GpuInfo parseInformation(std::string_view text, const std::string& where) {
  GpuInfo info;
  bool haveMinor = false;
  for (auto& [key, value] : parseKeyValues(text)) {
    if (key == "Device Minor") {
      auto m = parseUnsigned(value, 253);
      if (!m) throw Error(where + ": 'Device Minor: " + value + "' is not a GPU minor (0-253)");
      info.minor = *m;
      haveMinor = true;
    } else if (key == "GPU UUID") {
      // Before the GPU is initialised the driver may print a placeholder
      // ("??…"); only a real "GPU-" UUID of sane characters is kept.
      bool ok = value.size() > 4 && value.size() <= 80 && value.rfind("GPU-", 0) == 0;
      for (char c : std::string_view(value).substr(ok ? 4 : 0))
        if (!(std::isxdigit(static_cast<unsigned char>(c)) || c == '-')) ok = false;
      info.uuid = ok ? value : "";
    } else if (key == "Model") {
      info.model = value.substr(0, 256);
    } else if (key == "Bus Location") {
      if (!isValidBusId(value))
        throw Error(where + ": 'Bus Location: " + value + "' is not a PCI address");
      info.busId = lowercase(value);
    } else if (key == "GPU Excluded") {
      info.excluded = lowercase(value) == "yes";
    }
  }
  if (!haveMinor) throw Error(where + ": no 'Device Minor:' line");
  return info;
}

std::string parseDriverVersion(std::string_view text, const std::string& where) {
  size_t pos = text.find("NVRM version:");
  if (pos != std::string_view::npos) {
    std::string_view line = text.substr(pos);
    line = line.substr(0, line.find('\n'));
    // The first whitespace-separated token that looks like a version.
    size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
      size_t j = i;
      while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
      if (isVersion(line.substr(i, j - i))) return std::string(line.substr(i, j - i));
      i = j;
    }
  }
  throw Error(where + ": no driver version on an 'NVRM version:' line");
}

std::map<std::string, unsigned> parseCharMajors(std::string_view text) {
  std::map<std::string, unsigned> out;
  bool inChar = false;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = trim(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (line == "Character devices:") {
      inChar = true;
      continue;
    }
    if (line == "Block devices:") {
      inChar = false;
      continue;
    }
    if (!inChar || line.empty()) continue;
    size_t sp = line.find_first_of(" \t");
    if (sp == std::string_view::npos) continue;
    auto major = parseUnsigned(line.substr(0, sp), 4095);  // MAJORBITS = 12
    std::string name(trim(line.substr(sp)));
    // The first registration of a name wins; names are unique in practice.
    if (major && !name.empty()) out.emplace(std::move(name), *major);
  }
  return out;
}

std::string paramsWithoutModifyDeviceFiles(std::string_view params) {
  std::string out;
  bool found = false;
  while (!params.empty()) {
    size_t nl = params.find('\n');
    std::string_view line = params.substr(0, nl);
    params = nl == std::string_view::npos ? std::string_view{} : params.substr(nl + 1);
    size_t colon = line.find(':');
    if (colon != std::string_view::npos && trim(line.substr(0, colon)) == "ModifyDeviceFiles") {
      out += "ModifyDeviceFiles: 0\n";
      found = true;
    } else if (!trim(line).empty()) {
      out.append(line);
      out += '\n';
    }
  }
  if (!found) out += "ModifyDeviceFiles: 0\n";
  return out;
}

}  // namespace gpubox::gpu
