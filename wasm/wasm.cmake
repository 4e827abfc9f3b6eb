# The WebAssembly build (included by CMakeLists.txt under emcmake). See wasm/README.md.
#   dist/gpt2.mjs + dist/gpt2.wasm : the ES-module factory the JS API loads
#   build-wasm/test_*.cjs          : the C unit tests, run under Node by ctest

set(GPT2_DIST_DIR "${CMAKE_SOURCE_DIR}/dist" CACHE PATH "Where the WASM module is written")
set(GPT2_WASM_DIR "${CMAKE_SOURCE_DIR}/wasm")

# Functions JS calls (the core's own plus wasm/api.c's wrappers).
set(GPT2_WASM_EXPORTS
  _malloc _free
  _wasm_loader_create _wasm_loader_set_file_size _wasm_loader_finish
  _gpt2_loader_feed _gpt2_loader_free
  _gpt2_weights_free _wasm_weights_config _wasm_weights_bytes _wasm_weights_params _wasm_weights_precision _wasm_model_bytes
  _wasm_weights_precision_reason _wasm_heap_end
  _wasm_quantizer_create _gpt2_quantizer_feed _gpt2_quantizer_finish _gpt2_quantizer_free
  _gpt2_quantizer_consume _gpt2_quantizer_summary _wasm_quantizer_output_ptr _wasm_quantizer_output_len
  _wasm_quantizer_output_size
  _wasm_tokenizer_create _gpt2_tokenizer_free _gpt2_tokenizer_encode _gpt2_tokenizer_decode
  _gpt2_tokenizer_eot_id
  _gpt2_decoder_init _gpt2_decoder_push _gpt2_decoder_finish _gpt2_decoder_max_output
  _wasm_state_create _gpt2_state_free _gpt2_state_rewind _gpt2_forward
  _gpt2_generate_params_default _wasm_generator_create _gpt2_generator_next _gpt2_generator_free
  _gpt2_generator_count _gpt2_generator_prompt_tokens _gpt2_generator_truncated _gpt2_generator_slides
  _gpt2_generator_set_draft _gpt2_generator_draft_proposed _gpt2_generator_draft_accepted
  _gpt2_score_topk
  _wasm_session_create _wasm_session_clone _gpt2_session_free _gpt2_session_pos _gpt2_session_tokens
  _gpt2_session_computed _gpt2_session_append _gpt2_session_rewind
  _wasm_pool_create _wasm_pool_threads _gpt2_pool_free _wasm_weights_set_pool
  _gpt2_train_options_default _wasm_train_create _gpt2_train_free _gpt2_train_set_data _wasm_train_step
  _gpt2_train_evaluate
  _gpt2_train_write_back _wasm_train_checkpoint_size _wasm_train_checkpoint_write
  _wasm_train_checkpoint_read _wasm_train_step_count _wasm_weights_safetensors_size _wasm_weights_write_safetensors _wasm_weights_config_json
  _wasm_bench_stream_weights _wasm_bench_step) # wasm/bench_api.c: the benchmark's steps
list(JOIN GPT2_WASM_EXPORTS "," GPT2_WASM_EXPORTS_CSV)

add_executable(gpt2_wasm ${GPT2_WASM_DIR}/api.c ${GPT2_WASM_DIR}/bench_api.c)
target_link_libraries(gpt2_wasm PRIVATE gpt2core)
# The threaded build (GPT2_WASM_THREADS, its own build folder: every object is compiled with
# -pthread) is dist/gpt2-mt.mjs + .wasm + .worker.js. Its pthread pool is started with the
# module: Module.gpt2Workers workers (the JS asks for threads - 1; the caller's thread is the
# other one). The worker script is CommonJS, so dist/ gets a {"type":"commonjs"} package.json
# (the repository's says "module"; .mjs files are modules whatever it says).
if(GPT2_WASM_THREADS)
  set(GPT2_WASM_OUTPUT gpt2-mt)
else()
  set(GPT2_WASM_OUTPUT gpt2)
endif()
set_target_properties(gpt2_wasm PROPERTIES
  OUTPUT_NAME ${GPT2_WASM_OUTPUT} SUFFIX ".mjs" RUNTIME_OUTPUT_DIRECTORY "${GPT2_DIST_DIR}")
if(GPT2_WASM_THREADS)
  target_link_options(gpt2_wasm PRIVATE
    "-sPTHREAD_POOL_SIZE=Module.gpt2Workers||1" -Wno-pthreads-mem-growth
    "SHELL:--pre-js ${GPT2_WASM_DIR}/threads_pre.js" "SHELL:--post-js ${GPT2_WASM_DIR}/threads_post.js")
  add_custom_command(TARGET gpt2_wasm POST_BUILD
    COMMAND ${CMAKE_COMMAND} -DFILE=${GPT2_DIST_DIR}/gpt2-mt.worker.js -P ${GPT2_WASM_DIR}/patch_worker.cmake)
  file(WRITE "${GPT2_DIST_DIR}/package.json" "{\"type\": \"commonjs\"}\n")
  file(WRITE "${CMAKE_BINARY_DIR}/package.json" "{\"type\": \"commonjs\"}\n") # the tests' workers
endif()
target_link_options(gpt2_wasm PRIVATE
  -sMODULARIZE=1 -sEXPORT_ES6=1 -sEXPORT_NAME=createGpt2Module
  -sENVIRONMENT=web,worker,node
  -sALLOW_MEMORY_GROWTH=1 -sMAXIMUM_MEMORY=4GB
  -sFILESYSTEM=0
  # do not install process-wide uncaughtException/unhandledRejection handlers in Node apps
  -sNODEJS_CATCH_EXIT=0 -sNODEJS_CATCH_REJECTION=0
  -sEXPORTED_FUNCTIONS=${GPT2_WASM_EXPORTS_CSV}
  -sEXPORTED_RUNTIME_METHODS=UTF8ToString
  "SHELL:--extern-pre-js ${GPT2_WASM_DIR}/node_esm_shim.js" "SHELL:--pre-js ${GPT2_WASM_DIR}/node_require.js")
# Relink when the JS pasted into the module changes.
set_property(TARGET gpt2_wasm APPEND PROPERTY LINK_DEPENDS
  ${GPT2_WASM_DIR}/node_esm_shim.js ${GPT2_WASM_DIR}/node_require.js ${GPT2_WASM_DIR}/threads_pre.js
  ${GPT2_WASM_DIR}/threads_post.js ${GPT2_WASM_DIR}/patch_worker.cmake)

# The C unit tests as Node programs reading the real file system (NODERAWFS), run from
# the repository root like the native ones.
# .cjs because the repository's package.json says "type": "module".
function(gpt2_wasm_test_options target)
  set_target_properties(${target} PROPERTIES SUFFIX ".cjs")
  target_link_options(${target} PRIVATE -sNODERAWFS=1 -sENVIRONMENT=node -sALLOW_MEMORY_GROWTH=1
    -sMAXIMUM_MEMORY=4GB -sEXIT_RUNTIME=1 --pre-js ${GPT2_WASM_DIR}/node_wasm_load.js)
  if(GPT2_WASM_THREADS) # test_pool starts up to 4 threads: their workers must exist beforehand
    target_link_options(${target} PRIVATE -sPTHREAD_POOL_SIZE=4 -Wno-pthreads-mem-growth)
  endif()
endfunction()

# js/constants.js: written by wasm/constants.c from the headers (sizes and offsets are wasm32's,
# so it is built and run like the tests: a Node program). Replaced only when its text changes;
# the module depends on it, so `--target gpt2_wasm` refreshes it too. The threaded build has the
# same layouts and leaves it to the single-thread one.
if(NOT GPT2_WASM_THREADS)
  add_executable(gpt2_constants ${GPT2_WASM_DIR}/constants.c)
  target_link_libraries(gpt2_constants PRIVATE gpt2core)
  set_target_properties(gpt2_constants PROPERTIES SUFFIX ".cjs")
  target_link_options(gpt2_constants PRIVATE -sENVIRONMENT=node --pre-js ${GPT2_WASM_DIR}/node_wasm_load.js)
  add_custom_target(gpt2_constants_js
    COMMAND ${CMAKE_CROSSCOMPILING_EMULATOR} $<TARGET_FILE:gpt2_constants> > ${CMAKE_BINARY_DIR}/constants.js
    COMMAND ${CMAKE_COMMAND} -E copy_if_different ${CMAKE_BINARY_DIR}/constants.js ${CMAKE_SOURCE_DIR}/js/constants.js
    DEPENDS gpt2_constants VERBATIM)
  add_dependencies(gpt2_wasm gpt2_constants_js)
endif()
