{
  "targets": [
    {
      "target_name": "wirelane_bpf",
      "sources": [
        "native/addon.cc",
        "native/bpf_error.cc",
        "native/link.cc",
        "native/map.cc",
        "native/object.cc",
        "native/probe.cc",
        "native/program.cc",
        "native/tc.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-missing-field-initializers", "-Wno-unused-parameter"],
      "libraries": ["-lbpf", "-lelf", "-lz"]
    }
  ]
}
