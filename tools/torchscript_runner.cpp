// Runs a TorchScript model on a float32 .npy tensor with libtorch alone (no Python), as the
// Java tools (deepImageJ, Icy through JDLL) do, and writes the output as a float32 .npy file.
//
// Usage: torchscript_runner MODEL.pt INPUT.npy OUTPUT.npy
// Build: see tools/README.md (tests/test_runtimes.py builds it against the torch wheel).
#include <torch/script.h>
#include <torch/version.h>

#include <cstdint>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

// Reads a little-endian float32, C-order .npy file (format version 1 or 2).
torch::Tensor read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  char magic[6];
  in.read(magic, 6);
  if (std::string(magic + 1, 5) != "NUMPY") throw std::runtime_error(path + ": not a .npy file");
  uint8_t major = 0, minor = 0;
  in.read(reinterpret_cast<char*>(&major), 1);
  in.read(reinterpret_cast<char*>(&minor), 1);
  uint32_t header_length = 0;
  if (major == 1) {
    uint16_t length = 0;
    in.read(reinterpret_cast<char*>(&length), 2);
    header_length = length;
  } else {
    in.read(reinterpret_cast<char*>(&header_length), 4);
  }
  std::string header(header_length, ' ');
  in.read(&header[0], header_length);
  if (header.find("'descr': '<f4'") == std::string::npos)
    throw std::runtime_error(path + ": expected little-endian float32");
  if (header.find("'fortran_order': False") == std::string::npos)
    throw std::runtime_error(path + ": expected C order");
  auto open = header.find('(', header.find("'shape'"));
  auto close = header.find(')', open);
  std::stringstream dims(header.substr(open + 1, close - open - 1));
  std::vector<int64_t> shape;
  std::string item;
  int64_t count = 1;
  while (std::getline(dims, item, ',')) {
    if (item.find_first_not_of(' ') == std::string::npos) continue;
    shape.push_back(std::stoll(item));
    count *= shape.back();
  }
  std::vector<float> data(count);
  in.read(reinterpret_cast<char*>(data.data()), count * sizeof(float));
  if (!in) throw std::runtime_error(path + ": truncated data");
  return torch::from_blob(data.data(), shape, torch::kFloat32).clone();
}

void write_npy(const std::string& path, const torch::Tensor& tensor) {
  auto data = tensor.contiguous().to(torch::kFloat32);
  std::string shape;
  for (auto size : data.sizes()) shape += std::to_string(size) + ", ";
  std::string header =
      "{'descr': '<f4', 'fortran_order': False, 'shape': (" + shape + "), }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  out.write("\x93NUMPY\x01\x00", 8);
  uint16_t length = static_cast<uint16_t>(header.size());
  out.write(reinterpret_cast<const char*>(&length), 2);
  out.write(header.data(), header.size());
  out.write(reinterpret_cast<const char*>(data.data_ptr<float>()), data.numel() * sizeof(float));
  if (!out) throw std::runtime_error(path + ": cannot write");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: " << argv[0] << " MODEL.pt INPUT.npy OUTPUT.npy\n";
    return 2;
  }
  try {
    torch::NoGradGuard no_grad;
    auto module = torch::jit::load(argv[1]);
    module.eval();
    auto output = module.forward({read_npy(argv[2])}).toTensor();
    write_npy(argv[3], output);
    std::cout << "libtorch " << TORCH_VERSION << ": wrote " << argv[3] << " " << output.sizes()
              << "\n";
  } catch (const std::exception& error) {
    std::cerr << "error: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
