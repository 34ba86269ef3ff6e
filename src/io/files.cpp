// Memory-mapped input files, atomic output files, and format names.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <vector>

#include "io/io.hpp"

namespace flashkmeans::io {

namespace {

std::string errno_text() { return std::strerror(errno); }

std::string lower_extension(const std::string& path) {
  const std::size_t slash = path.find_last_of('/');
  const std::size_t dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  std::string ext = path.substr(dot + 1);
  for (char& c : ext) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return ext;
}

}  // namespace

MappedFile::MappedFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw FileError("cannot open " + path + ": " + errno_text());
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const std::string why = errno_text();
    ::close(fd);
    throw FileError("cannot read " + path + ": " + why);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw FileError(path + " is not a regular file");
  }
  size_ = static_cast<std::uint64_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const std::string why = errno_text();
      ::close(fd);
      throw FileError("cannot map " + path + " (" + std::to_string(size_) + " bytes): " + why);
    }
    data_ = static_cast<const unsigned char*>(p);
  }
  ::close(fd);  // the mapping keeps the file open
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<unsigned char*>(data_), size_);
}

Input Input::map(const std::string& path) {
  auto file = std::make_shared<MappedFile>(path);
  Input in;
  in.data = file->data(), in.size = file->size(), in.name = path;
  in.owner = std::move(file);
  return in;
}

Input Input::copy(const std::string& name, const void* data, std::size_t size) {
  // Exactly size bytes (no padding), so that a sanitizer sees any read past the end.
  auto bytes = std::make_shared<std::vector<unsigned char>>(size);
  if (size > 0) std::memcpy(bytes->data(), data, size);
  Input in;
  in.data = bytes->data(), in.size = size, in.name = name;
  in.owner = std::move(bytes);
  return in;
}

AtomicFile::AtomicFile(const std::string& path) : path_(path) {
  std::string temp = path + ".tmp-XXXXXX";
  fd_ = ::mkstemp(temp.data());
  if (fd_ < 0) throw WriteError("cannot create " + path + ": " + errno_text());
  temp_ = temp;
  // mkstemp creates 0600; give the result the permissions of an ordinary new file.
  const mode_t mask = ::umask(0);
  ::umask(mask);
  ::fchmod(fd_, 0666 & ~mask);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(temp_.c_str());
  }
}

void AtomicFile::write(const void* data, std::size_t size) {
  if (fd_ < 0) throw WriteError("cannot write " + path_ + ": the file is already closed");
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t w = ::write(fd_, p, size);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw WriteError("cannot write " + path_ + ": " + errno_text());
    }
    p += w, size -= static_cast<std::size_t>(w);
  }
}

void AtomicFile::commit() {
  if (fd_ < 0) throw WriteError("cannot write " + path_ + ": the file is already closed");
  if (::close(fd_) != 0) {
    fd_ = -1;
    const std::string why = errno_text();
    ::unlink(temp_.c_str());
    throw WriteError("cannot write " + path_ + ": " + why);
  }
  fd_ = -1;
  if (::rename(temp_.c_str(), path_.c_str()) != 0) {
    const std::string why = errno_text();
    ::unlink(temp_.c_str());
    throw WriteError("cannot write " + path_ + ": " + why);
  }
}

void write_file_atomic(const std::string& path, const void* data, std::size_t size) {
  AtomicFile f(path);
  f.write(data, size);
  f.commit();
}

Format format_from_path(const std::string& path) {
  const std::string ext = lower_extension(path);
  if (ext == "npy") return Format::npy;
  if (ext == "fvecs") return Format::fvecs;
  if (ext == "bvecs") return Format::bvecs;
  if (ext == "ivecs") return Format::ivecs;
  if (ext == "csv" || ext == "txt") return Format::csv;
  if (ext == "f32" || ext == "bin" || ext == "raw") return Format::raw;
  throw FileError("cannot tell the format of " + path + " from its extension ('" + ext +
                  "'): expected .npy, .fvecs, .bvecs, .ivecs, .csv, .txt, or .f32/.bin/.raw (raw float32); "
                  "or name the format");
}

Format parse_format(const std::string& name) {
  for (Format f : {Format::npy, Format::fvecs, Format::bvecs, Format::ivecs, Format::csv, Format::raw})
    if (name == to_string(f)) return f;
  throw Error(ErrorKind::invalid_argument,
              "unknown format '" + name + "': expected npy, fvecs, bvecs, ivecs, csv or raw");
}

const char* to_string(Format f) {
  switch (f) {
    case Format::npy: return "npy";
    case Format::fvecs: return "fvecs";
    case Format::bvecs: return "bvecs";
    case Format::ivecs: return "ivecs";
    case Format::csv: return "csv";
    case Format::raw: return "raw";
  }
  return "?";
}

}  // namespace flashkmeans::io
