#include "top_level_args.hpp"

#include "error.hpp"

namespace gpubox::cli {

namespace {

using Command = TopLevel::Command;

const char* nameOf(Command c) {
  switch (c) {
    case Command::Ps:
      return "ps";
    case Command::Info:
      return "info";
    case Command::Gpus:
      return "gpus";
    default:
      return "";
  }
}

}  // namespace

TopLevel parseTopLevel(const std::vector<std::string>& args) {
  TopLevel out;
  size_t i = 0;
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--socket") {
      if (i + 1 >= args.size()) throw Error("--socket needs a path");
      out.socket = args[++i];
    } else if (a.starts_with("--socket=")) {
      out.socket = a.substr(9);
    } else if (a == "--version") {
      out.command = Command::Version;
      return out;
    } else if (a == "-h" || a == "--help") {
      out.command = Command::Help;
      return out;
    } else {
      break;
    }
  }
  if (i >= args.size()) throw Error("no command given");
  const std::string& word = args[i];
  if (word == "run" || word == "exec" || word == "session") {
    out.command = word == "run" ? Command::Run : word == "exec" ? Command::Exec : Command::Session;
    out.rest.assign(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
    return out;
  }
  if (word == "ps")
    out.command = Command::Ps;
  else if (word == "info")
    out.command = Command::Info;
  else if (word == "gpus")
    out.command = Command::Gpus;
  else if (word.starts_with("-"))
    throw Error("unknown option " + word);
  else
    throw Error("unknown command " + word);
  for (++i; i < args.size(); ++i) {
    if (args[i] == "--json")
      out.json = true;
    else if (args[i] == "-h" || args[i] == "--help")
      out.help = true;
    else
      throw Error(std::string(nameOf(out.command)) + ": unexpected " + args[i] +
                  " (it takes only --json)");
  }
  return out;
}

std::string topLevelUsage() {
  return "gpubox: run commands in GPU-capable sandboxes built by gpubox-helper\n"
         "usage: gpubox [--socket PATH] COMMAND ...\n"
         "\n"
         "options:\n"
         "  --socket PATH   the helper's socket (default: $GPUBOX_SOCKET, else "
         "/run/gpubox/gpubox.sock)\n"
         "  --version       print the version and exit\n"
         "  -h, --help      print this and exit\n"
         "\n"
         "commands:\n"
         "  run       run a command in a new sandbox (see gpubox run --help)\n"
         "  session   session create [OPTIONS] | rm NAME | ls: sandboxes that stay\n"
         "  exec      run a command in a session (gpubox exec NAME -- CMD)\n"
         "  ps        list your sessions and running sandboxes [--json]\n"
         "  info      show the helper's version and kernel features [--json]\n"
         "  gpus      list the GPUs you may use [--json]\n";
}

std::string listingUsage(Command command) {
  const char* what = command == Command::Ps     ? "list your sessions and running sandboxes"
                     : command == Command::Info ? "show the helper's version and kernel features"
                                                : "list the GPUs you may use";
  return std::string("usage: gpubox [--socket PATH] ") + nameOf(command) + " [--json]\n" + what +
         "; --json: print JSON\n";
}

}  // namespace gpubox::cli
