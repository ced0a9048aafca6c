// cim-osgb-dump: reads OpenSceneGraph scene files (the OSGB tiles of an
// oblique-photography production) with OpenSceneGraph's own plugins and
// writes what the 3D Tiles converter needs as plain arrays.
//
// Why a small program of our own and not osgconv: osgconv has no output
// format that keeps the PagedLOD ranges, the geometry and the embedded JPEG
// bytes together in a machine-readable form (OBJ drops the LOD tree, .osgt is
// text that costs more to parse than to convert); this reads each file once,
// through the same osgDB plugins osgconv uses, in one long-lived process.
//
// Protocol: one file path per line on stdin; for each, one record on stdout:
//   uint64 header length, JSON header, uint64 payload length, payload.
// The header lists the file's PagedLOD nodes (centre, radius, range mode,
// ranges, child file names), its geometries (transformed to the file's
// coordinates in double precision; offsets into the payload of float64
// positions, float32 texture coordinates, uint32 triangle indices) and its
// textures (the embedded JPEG/PNG bytes passed through untouched, or raw
// pixels when the file holds pixels). A file that cannot be read gives a
// header with "error".
#include <osg/Geometry>
#include <osg/Image>
#include <osg/Material>
#include <osg/NodeVisitor>
#include <osg/PagedLOD>
#include <osg/Texture>
#include <osg/Transform>
#include <osg/TriangleIndexFunctor>
#include <osgDB/FileNameUtils>
#include <osgDB/FileUtils>
#include <osgDB/ReadFile>
#include <osgDB/Registry>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {

const char* kBytesKey = "cim_encoded_bytes";

// Takes the place of the jpeg/png plugins: keeps an image's encoded bytes
// instead of decoding them (the tiles carry the JPEG as it is, and decoding
// is most of the cost of reading a textured OSGB).
class PassThroughImages : public osgDB::ReaderWriter {
 public:
  PassThroughImages() {
    supportsExtension("jpg", "JPEG (kept encoded)");
    supportsExtension("jpeg", "JPEG (kept encoded)");
    supportsExtension("png", "PNG (kept encoded)");
  }
  const char* className() const override { return "cim pass-through images"; }

  ReadResult readImage(std::istream& in, const Options*) const override {
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return wrap(data);
  }

  ReadResult readImage(const std::string& file, const Options* options) const override {
    if (!acceptsExtension(osgDB::getLowerCaseFileExtension(file))) return ReadResult::FILE_NOT_HANDLED;
    std::string path = osgDB::findDataFile(file, options);
    if (path.empty()) return ReadResult::FILE_NOT_FOUND;
    std::ifstream in(path.c_str(), std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return wrap(data);
  }

 private:
  static ReadResult wrap(const std::string& data) {
    if (data.empty()) return ReadResult::ERROR_IN_READING_FILE;
    osg::ref_ptr<osg::Image> image = new osg::Image;
    image->setUserValue(kBytesKey, data);
    return image.release();
  }
};

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') { out += '\\'; out += static_cast<char>(c); }
    else if (c < 0x20) { char buf[8]; std::snprintf(buf, sizeof buf, "\\u%04x", c); out += buf; }
    else out += static_cast<char>(c);
  }
  return out + "\"";
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

struct Payload {
  std::string bytes;
  size_t add(const void* data, size_t size) {
    while (bytes.size() % 8) bytes.push_back('\0');
    size_t offset = bytes.size();
    bytes.append(static_cast<const char*>(data), size);
    return offset;
  }
};

struct Triangles {
  std::vector<uint32_t>* out = nullptr;
  void operator()(unsigned int a, unsigned int b, unsigned int c) {
    if (a == b || b == c || a == c) return;
    out->push_back(a); out->push_back(b); out->push_back(c);
  }
};

struct LodNode {
  osg::Vec3d centre;
  double radius;
  bool pixel_mode;
  std::vector<std::pair<float, float>> ranges;
  std::vector<std::string> files;  // one per range ("" = a child held in this file)
};

class Collector : public osg::NodeVisitor {
 public:
  Collector() : osg::NodeVisitor(TRAVERSE_ALL_CHILDREN) { matrices.push_back(osg::Matrixd::identity()); }

  std::vector<LodNode> nodes;
  std::vector<std::string> geometries;  // JSON objects
  std::vector<std::string> textures;
  Payload payload;
  size_t vertices = 0, triangles = 0;

  void apply(osg::Transform& t) override {
    osg::Matrixd m = matrices.back();
    t.computeLocalToWorldMatrix(m, this);
    matrices.push_back(m);
    traverse(t);
    matrices.pop_back();
  }

  void apply(osg::PagedLOD& lod) override {
    LodNode n;
    osg::Vec3d centre = lod.getCenterMode() == osg::LOD::USER_DEFINED_CENTER ? osg::Vec3d(lod.getCenter())
                                                                           : osg::Vec3d(lod.getBound().center());
    n.centre = centre * matrices.back();
    n.radius = lod.getCenterMode() == osg::LOD::USER_DEFINED_CENTER ? lod.getRadius() : lod.getBound().radius();
    n.pixel_mode = lod.getRangeMode() == osg::LOD::PIXEL_SIZE_ON_SCREEN;
    for (unsigned i = 0; i < lod.getNumRanges(); ++i) {
      n.ranges.push_back({lod.getMinRange(i), lod.getMaxRange(i)});
      n.files.push_back(i < lod.getNumFileNames() ? lod.getFileName(i) : std::string());
    }
    nodes.push_back(n);
    int parent = current;
    current = static_cast<int>(nodes.size()) - 1;
    traverse(lod);
    current = parent;
  }

  void apply(osg::Geometry& g) override {
    const osg::Array* v = g.getVertexArray();
    if (!v || v->getNumElements() == 0) return;
    auto single = dynamic_cast<const osg::Vec3Array*>(v);
    auto dbl = dynamic_cast<const osg::Vec3dArray*>(v);
    if (!single && !dbl) return;  // 2D or 4D positions: not a surface model
    const osg::Matrixd& m = matrices.back();
    size_t n = v->getNumElements();
    std::vector<double> xyz(n * 3);
    for (size_t i = 0; i < n; ++i) {
      osg::Vec3d p = (single ? osg::Vec3d((*single)[i]) : (*dbl)[i]) * m;
      xyz[3 * i] = p.x(); xyz[3 * i + 1] = p.y(); xyz[3 * i + 2] = p.z();
    }
    osg::TriangleIndexFunctor<Triangles> tris;
    std::vector<uint32_t> indices;
    tris.out = &indices;
    g.accept(tris);
    if (indices.empty()) return;
    std::ostringstream o;
    o << "{\"node\":" << current << ",\"vertices\":" << n << ",\"indices\":" << indices.size()
      << ",\"positions\":" << payload.add(xyz.data(), xyz.size() * sizeof(double))
      << ",\"triangle_indices\":" << payload.add(indices.data(), indices.size() * sizeof(uint32_t));
    const osg::Vec2Array* uv = dynamic_cast<const osg::Vec2Array*>(g.getTexCoordArray(0));
    if (uv && uv->getNumElements() == n) o << ",\"uv\":" << payload.add(&(*uv)[0], n * sizeof(osg::Vec2));
    o << ",\"texture\":" << texture_of(g.getStateSet());
    o << "}";
    geometries.push_back(o.str());
    vertices += n;
    triangles += indices.size() / 3;
  }

 private:
  std::vector<osg::Matrixd> matrices;
  int current = -1;
  std::map<const osg::Image*, int> seen;

  int texture_of(const osg::StateSet* ss) {
    if (!ss) return -1;
    auto tex = dynamic_cast<const osg::Texture*>(ss->getTextureAttribute(0, osg::StateAttribute::TEXTURE));
    if (!tex || tex->getNumImages() == 0 || !tex->getImage(0)) return -1;
    const osg::Image* image = tex->getImage(0);
    auto found = seen.find(image);
    if (found != seen.end()) return found->second;
    std::ostringstream o;
    o << "{\"name\":" << json_string(image->getFileName());
    std::string encoded;
    if (image->getUserValue(kBytesKey, encoded)) {
      o << ",\"encoded\":" << payload.add(encoded.data(), encoded.size()) << ",\"size\":" << encoded.size();
    } else if (image->data() && !image->isCompressed() && image->getDataType() == GL_UNSIGNED_BYTE) {
      // raw pixels, rows bottom to top as OpenGL has them
      std::string rows;
      for (int t = 0; t < image->t(); ++t)
        rows.append(reinterpret_cast<const char*>(image->data(0, t)), image->getRowSizeInBytes());
      o << ",\"raw\":" << payload.add(rows.data(), rows.size()) << ",\"size\":" << rows.size()
        << ",\"width\":" << image->s() << ",\"height\":" << image->t()
        << ",\"pixel_format\":" << image->getPixelFormat();
    } else {
      o << ",\"unsupported\":" << json_string(image->isCompressed() ? "compressed pixels" : "pixel type");
    }
    o << "}";
    textures.push_back(o.str());
    int index = static_cast<int>(textures.size()) - 1;
    seen[image] = index;
    return index;
  }
};

void write_record(const std::string& header, const std::string& payload) {
  uint64_t h = header.size(), p = payload.size();
  std::fwrite(&h, 8, 1, stdout);
  std::fwrite(header.data(), 1, header.size(), stdout);
  std::fwrite(&p, 8, 1, stdout);
  std::fwrite(payload.data(), 1, payload.size(), stdout);
  std::fflush(stdout);
}

void dump(const std::string& path) {
  osg::ref_ptr<osgDB::Options> options = new osgDB::Options;
  options->setObjectCacheHint(osgDB::Options::CACHE_NONE);
  // OBJ tiles of a production are z-up already: no turn from OBJ's usual y-up
  if (osgDB::getLowerCaseFileExtension(path) == "obj") options->setOptionString("noRotation");
  if (!osgDB::fileExists(path)) {
    write_record("{\"file\":" + json_string(path) + ",\"error\":\"file not found\"}", "");
    return;
  }
  osgDB::ReaderWriter::ReadResult rr = osgDB::Registry::instance()->readNode(path, options.get(), false);
  if (!rr.validNode()) {
    std::string why = rr.message().empty() ? "not a readable OpenSceneGraph file (truncated or damaged?)" : rr.message();
    write_record("{\"file\":" + json_string(path) + ",\"error\":" + json_string(why) + "}", "");
    return;
  }
  Collector c;
  rr.getNode()->accept(c);
  std::ostringstream o;
  o << "{\"file\":" << json_string(path) << ",\"vertex_count\":" << c.vertices
    << ",\"triangle_count\":" << c.triangles << ",\"nodes\":[";
  for (size_t i = 0; i < c.nodes.size(); ++i) {
    const LodNode& n = c.nodes[i];
    o << (i ? "," : "") << "{\"centre\":[" << num(n.centre.x()) << "," << num(n.centre.y()) << ","
      << num(n.centre.z()) << "],\"radius\":" << num(n.radius) << ",\"pixel_mode\":" << (n.pixel_mode ? "true" : "false")
      << ",\"ranges\":[";
    for (size_t k = 0; k < n.ranges.size(); ++k)
      o << (k ? "," : "") << "[" << num(n.ranges[k].first) << "," << num(n.ranges[k].second) << "]";
    o << "],\"files\":[";
    for (size_t k = 0; k < n.files.size(); ++k) o << (k ? "," : "") << json_string(n.files[k]);
    o << "]}";
  }
  o << "],\"geometries\":[";
  for (size_t i = 0; i < c.geometries.size(); ++i) o << (i ? "," : "") << c.geometries[i];
  o << "],\"textures\":[";
  for (size_t i = 0; i < c.textures.size(); ++i) o << (i ? "," : "") << c.textures[i];
  o << "]}";
  write_record(o.str(), c.payload.bytes);
}

}  // namespace

int main() {
  osg::setNotifyLevel(osg::FATAL);  // the records say what went wrong; OSG's own chatter would mix into logs
  osgDB::Registry::instance()->addReaderWriter(new PassThroughImages);
  std::string line;
  while (std::getline(std::cin, line)) {
    if (!line.empty()) dump(line);
  }
  return 0;
}
