# cmake -DFILE=dist/gpt2-mt.worker.js -P wasm/patch_worker.cmake (after linking the threaded
# build): Emscripten 3.1.6's pthread worker script is CommonJS and, on Node only, calls
# require("worker_threads") and require("fs"). Bundlers take those calls for imports and warn
# that they "externalized" Node modules for the browser; module.require() is the same function
# in CommonJS and is not taken for an import.
file(READ "${FILE}" text)
foreach(name worker_threads fs)
  string(REPLACE "=require(\"${name}\")" "=module.require(\"${name}\")" text "${text}")
endforeach()
file(WRITE "${FILE}" "${text}")
