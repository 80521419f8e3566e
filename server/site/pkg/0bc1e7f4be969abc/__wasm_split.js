import { initSync } from "./flowdeck.js";

let sharedImports = undefined;
function getSharedImports() {
    if (sharedImports === undefined) {
        sharedImports = { __wasm_split: {  } };
        const { __wasm_split_shared0, memory, __indirect_function_table,  } = initSync(undefined, undefined);
        Object.assign(sharedImports.__wasm_split, { __wasm_split_shared0, memory, __indirect_function_table,  });
    }
    return sharedImports;
}
function wrapAsyncCb(callee) {
    return async (callbackIndex, callbackData) => {
        let success;
        try {
            await callee();
            success = true;
        } catch (e) {
            console.error(e);
            success = false;
        } finally {
            const sharedImports = getSharedImports();
            sharedImports.__wasm_split.__indirect_function_table.get(callbackIndex)(callbackData, success);
        }
    }
}
function makeLoad(fetcher, deps) {
    const loader = async () => {
        const parallelStuff = deps.map(d => d());
        const instantiate = fetcher();
        await Promise.all(parallelStuff);
        const imports = getSharedImports();
        return instantiate(imports);
    };
    let loadingModule = undefined;
    return () => {
        if (loadingModule === undefined) {
            const thisLoad = loader();
            // Memoize successes only: a rejected load must not be cached for
            // the lifetime of the session, or one transient network failure
            // permanently breaks the module. Clearing on rejection lets the
            // next call (e.g. the Rust side re-invoking load after a failed
            // callback) start a fresh attempt.
            thisLoad.catch(() => {
                if (loadingModule === thisLoad) loadingModule = undefined;
            });
            loadingModule = thisLoad;
        }
        return loadingModule;
    }
}
/* __alerts_route_view_8144971667952139842, __custom_route_view_6937619327317363136 */
const __chunk_18 = makeLoad(() => {
    const src = fetch(new URL("./chunk_18.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __custom_route_view_6937619327317363136, __errors_route_view_3291641260738289357, __logs_route_view_9974463303994218624, __metrics_route_view_10763664316344963726, __pipelines_route_view_5215267527785660091, __questions_route_view_12647490021432456, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __runs_route_view_9306783347148444582, __streaming_route_view_1694031240340446028, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_19 = makeLoad(() => {
    const src = fetch(new URL("./chunk_19.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __custom_route_view_6937619327317363136, __errors_route_view_3291641260738289357, __logs_route_view_9974463303994218624, __metrics_route_view_10763664316344963726, __pipelines_route_view_5215267527785660091, __questions_route_view_12647490021432456, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __runs_route_view_9306783347148444582, __streaming_route_view_1694031240340446028, __task_route_view_5273885161983263154, __workers_route_view_5691969086229124019 */
const __chunk_20 = makeLoad(() => {
    const src = fetch(new URL("./chunk_20.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __custom_route_view_6937619327317363136, __errors_route_view_3291641260738289357, __logs_route_view_9974463303994218624, __pipelines_route_view_5215267527785660091, __questions_route_view_12647490021432456, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_21 = makeLoad(() => {
    const src = fetch(new URL("./chunk_21.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __custom_route_view_6937619327317363136, __errors_route_view_3291641260738289357, __metrics_route_view_10763664316344963726, __questions_route_view_12647490021432456, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __streaming_route_view_1694031240340446028, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_22 = makeLoad(() => {
    const src = fetch(new URL("./chunk_22.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __custom_route_view_6937619327317363136, __errors_route_view_3291641260738289357, __metrics_route_view_10763664316344963726, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154 */
const __chunk_23 = makeLoad(() => {
    const src = fetch(new URL("./chunk_23.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __custom_route_view_6937619327317363136, __errors_route_view_3291641260738289357, __run_errors_route_view_6651743297476197593, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __streaming_route_view_1694031240340446028, __task_route_view_5273885161983263154 */
const __chunk_24 = makeLoad(() => {
    const src = fetch(new URL("./chunk_24.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624 */
const __chunk_25 = makeLoad(() => {
    const src = fetch(new URL("./chunk_25.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __metrics_route_view_10763664316344963726, __pipelines_route_view_5215267527785660091, __questions_route_view_12647490021432456, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __runs_route_view_9306783347148444582, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_26 = makeLoad(() => {
    const src = fetch(new URL("./chunk_26.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __metrics_route_view_10763664316344963726, __pipelines_route_view_5215267527785660091, __questions_route_view_12647490021432456, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __runs_route_view_9306783347148444582, __task_route_view_5273885161983263154, __workers_route_view_5691969086229124019 */
const __chunk_27 = makeLoad(() => {
    const src = fetch(new URL("./chunk_27.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __metrics_route_view_10763664316344963726, __pipelines_route_view_5215267527785660091, __questions_route_view_12647490021432456, __run_metrics_route_view_13934760009932927630, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_28 = makeLoad(() => {
    const src = fetch(new URL("./chunk_28.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __questions_route_view_12647490021432456, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_29 = makeLoad(() => {
    const src = fetch(new URL("./chunk_29.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __questions_route_view_12647490021432456, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __workers_route_view_5691969086229124019 */
const __chunk_30 = makeLoad(() => {
    const src = fetch(new URL("./chunk_30.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __run_tasks_route_view_8236663687178172126, __tasks_route_view_14295397040217648636 */
const __chunk_31 = makeLoad(() => {
    const src = fetch(new URL("./chunk_31.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __custom_route_view_6937619327317363136, __metrics_route_view_10763664316344963726, __pipelines_route_view_5215267527785660091, __questions_route_view_12647490021432456, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __runs_route_view_9306783347148444582, __streaming_route_view_1694031240340446028, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_32 = makeLoad(() => {
    const src = fetch(new URL("./chunk_32.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __custom_route_view_6937619327317363136, __metrics_route_view_10763664316344963726, __pipelines_route_view_5215267527785660091, __questions_route_view_12647490021432456, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __runs_route_view_9306783347148444582, __task_route_view_5273885161983263154 */
const __chunk_33 = makeLoad(() => {
    const src = fetch(new URL("./chunk_33.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __custom_route_view_6937619327317363136, __metrics_route_view_10763664316344963726, __pipelines_route_view_5215267527785660091, __questions_route_view_12647490021432456, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __runs_route_view_9306783347148444582, __task_route_view_5273885161983263154, __workers_route_view_5691969086229124019 */
const __chunk_34 = makeLoad(() => {
    const src = fetch(new URL("./chunk_34.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __custom_route_view_6937619327317363136, __metrics_route_view_10763664316344963726, __questions_route_view_12647490021432456, __run_metrics_route_view_13934760009932927630, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_35 = makeLoad(() => {
    const src = fetch(new URL("./chunk_35.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __custom_route_view_6937619327317363136, __metrics_route_view_10763664316344963726, __questions_route_view_12647490021432456, __run_metrics_route_view_13934760009932927630, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_36 = makeLoad(() => {
    const src = fetch(new URL("./chunk_36.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __custom_route_view_6937619327317363136, __metrics_route_view_10763664316344963726, __questions_route_view_12647490021432456, __run_metrics_route_view_13934760009932927630, __run_tasks_route_view_8236663687178172126, __runs_route_view_9306783347148444582, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_37 = makeLoad(() => {
    const src = fetch(new URL("./chunk_37.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __custom_route_view_6937619327317363136, __metrics_route_view_10763664316344963726, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_38 = makeLoad(() => {
    const src = fetch(new URL("./chunk_38.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __custom_route_view_6937619327317363136, __metrics_route_view_10763664316344963726, __run_metrics_route_view_13934760009932927630, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_39 = makeLoad(() => {
    const src = fetch(new URL("./chunk_39.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __custom_route_view_6937619327317363136, __metrics_route_view_10763664316344963726, __run_metrics_route_view_13934760009932927630, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __workers_route_view_5691969086229124019 */
const __chunk_40 = makeLoad(() => {
    const src = fetch(new URL("./chunk_40.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __custom_route_view_6937619327317363136, __metrics_route_view_10763664316344963726, __run_metrics_route_view_13934760009932927630, __run_tasks_route_view_8236663687178172126, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_41 = makeLoad(() => {
    const src = fetch(new URL("./chunk_41.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __custom_route_view_6937619327317363136, __metrics_route_view_10763664316344963726, __run_metrics_route_view_13934760009932927630, __tasks_route_view_14295397040217648636 */
const __chunk_42 = makeLoad(() => {
    const src = fetch(new URL("./chunk_42.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __custom_route_view_6937619327317363136, __metrics_route_view_10763664316344963726, __run_metrics_route_view_13934760009932927630, __workers_route_view_5691969086229124019 */
const __chunk_43 = makeLoad(() => {
    const src = fetch(new URL("./chunk_43.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __custom_route_view_6937619327317363136, __questions_route_view_12647490021432456, __runs_route_view_9306783347148444582, __task_route_view_5273885161983263154, __workers_route_view_5691969086229124019 */
const __chunk_44 = makeLoad(() => {
    const src = fetch(new URL("./chunk_44.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __custom_route_view_6937619327317363136, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_45 = makeLoad(() => {
    const src = fetch(new URL("./chunk_45.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __custom_route_view_6937619327317363136, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __workers_route_view_5691969086229124019 */
const __chunk_46 = makeLoad(() => {
    const src = fetch(new URL("./chunk_46.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __errors_route_view_3291641260738289357, __run_task_route_view_4093065451666268766, __streaming_route_view_1694031240340446028, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_47 = makeLoad(() => {
    const src = fetch(new URL("./chunk_47.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __metrics_route_view_10763664316344963726, __questions_route_view_12647490021432456, __run_metrics_route_view_13934760009932927630, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154 */
const __chunk_48 = makeLoad(() => {
    const src = fetch(new URL("./chunk_48.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __metrics_route_view_10763664316344963726, __run_metrics_route_view_13934760009932927630 */
const __chunk_49 = makeLoad(() => {
    const src = fetch(new URL("./chunk_49.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __pipelines_route_view_5215267527785660091, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636 */
const __chunk_50 = makeLoad(() => {
    const src = fetch(new URL("./chunk_50.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __pipelines_route_view_5215267527785660091, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636 */
const __chunk_51 = makeLoad(() => {
    const src = fetch(new URL("./chunk_51.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __pipelines_route_view_5215267527785660091, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_52 = makeLoad(() => {
    const src = fetch(new URL("./chunk_52.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __pipelines_route_view_5215267527785660091, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __workers_route_view_5691969086229124019 */
const __chunk_53 = makeLoad(() => {
    const src = fetch(new URL("./chunk_53.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __questions_route_view_12647490021432456, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636 */
const __chunk_54 = makeLoad(() => {
    const src = fetch(new URL("./chunk_54.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __questions_route_view_12647490021432456, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_55 = makeLoad(() => {
    const src = fetch(new URL("./chunk_55.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __questions_route_view_12647490021432456, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __workers_route_view_5691969086229124019 */
const __chunk_56 = makeLoad(() => {
    const src = fetch(new URL("./chunk_56.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __questions_route_view_12647490021432456, __run_task_route_view_4093065451666268766, __runs_route_view_9306783347148444582, __task_route_view_5273885161983263154, __workers_route_view_5691969086229124019 */
const __chunk_57 = makeLoad(() => {
    const src = fetch(new URL("./chunk_57.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __questions_route_view_12647490021432456, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_58 = makeLoad(() => {
    const src = fetch(new URL("./chunk_58.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __questions_route_view_12647490021432456, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __workers_route_view_5691969086229124019 */
const __chunk_59 = makeLoad(() => {
    const src = fetch(new URL("./chunk_59.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __questions_route_view_12647490021432456, __task_route_view_5273885161983263154, __workers_route_view_5691969086229124019 */
const __chunk_60 = makeLoad(() => {
    const src = fetch(new URL("./chunk_60.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __questions_route_view_12647490021432456, __workers_route_view_5691969086229124019 */
const __chunk_61 = makeLoad(() => {
    const src = fetch(new URL("./chunk_61.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154 */
const __chunk_62 = makeLoad(() => {
    const src = fetch(new URL("./chunk_62.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636 */
const __chunk_63 = makeLoad(() => {
    const src = fetch(new URL("./chunk_63.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636 */
const __chunk_64 = makeLoad(() => {
    const src = fetch(new URL("./chunk_64.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154 */
const __chunk_65 = makeLoad(() => {
    const src = fetch(new URL("./chunk_65.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636 */
const __chunk_66 = makeLoad(() => {
    const src = fetch(new URL("./chunk_66.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_67 = makeLoad(() => {
    const src = fetch(new URL("./chunk_67.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __workers_route_view_5691969086229124019 */
const __chunk_68 = makeLoad(() => {
    const src = fetch(new URL("./chunk_68.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __run_tasks_route_view_8236663687178172126 */
const __chunk_69 = makeLoad(() => {
    const src = fetch(new URL("./chunk_69.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __runs_route_view_9306783347148444582, __task_route_view_5273885161983263154 */
const __chunk_70 = makeLoad(() => {
    const src = fetch(new URL("./chunk_70.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __task_route_view_5273885161983263154 */
const __chunk_71 = makeLoad(() => {
    const src = fetch(new URL("./chunk_71.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __tasks_route_view_14295397040217648636 */
const __chunk_72 = makeLoad(() => {
    const src = fetch(new URL("./chunk_72.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __alerts_route_view_8144971667952139842, __workers_route_view_5691969086229124019 */
const __chunk_73 = makeLoad(() => {
    const src = fetch(new URL("./chunk_73.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __errors_route_view_3291641260738289357, __logs_route_view_9974463303994218624, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __streaming_route_view_1694031240340446028, __task_route_view_5273885161983263154, __workers_route_view_5691969086229124019 */
const __chunk_74 = makeLoad(() => {
    const src = fetch(new URL("./chunk_74.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __errors_route_view_3291641260738289357, __metrics_route_view_10763664316344963726, __questions_route_view_12647490021432456, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __tasks_route_view_14295397040217648636 */
const __chunk_75 = makeLoad(() => {
    const src = fetch(new URL("./chunk_75.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __errors_route_view_3291641260738289357, __metrics_route_view_10763664316344963726, __run_metrics_route_view_13934760009932927630, __streaming_route_view_1694031240340446028, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_76 = makeLoad(() => {
    const src = fetch(new URL("./chunk_76.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __errors_route_view_3291641260738289357, __questions_route_view_12647490021432456, __run_task_route_view_4093065451666268766, __streaming_route_view_1694031240340446028, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_77 = makeLoad(() => {
    const src = fetch(new URL("./chunk_77.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __errors_route_view_3291641260738289357, __run_errors_route_view_6651743297476197593 */
const __chunk_78 = makeLoad(() => {
    const src = fetch(new URL("./chunk_78.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __errors_route_view_3291641260738289357, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154 */
const __chunk_79 = makeLoad(() => {
    const src = fetch(new URL("./chunk_79.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __errors_route_view_3291641260738289357, __run_errors_route_view_6651743297476197593, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154 */
const __chunk_80 = makeLoad(() => {
    const src = fetch(new URL("./chunk_80.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __errors_route_view_3291641260738289357, __streaming_route_view_1694031240340446028, __workers_route_view_5691969086229124019 */
const __chunk_81 = makeLoad(() => {
    const src = fetch(new URL("./chunk_81.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624 */
const __chunk_82 = makeLoad(() => {
    const src = fetch(new URL("./chunk_82.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __metrics_route_view_10763664316344963726, __pipelines_route_view_5215267527785660091, __questions_route_view_12647490021432456, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __runs_route_view_9306783347148444582, __task_route_view_5273885161983263154, __workers_route_view_5691969086229124019 */
const __chunk_83 = makeLoad(() => {
    const src = fetch(new URL("./chunk_83.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __metrics_route_view_10763664316344963726, __pipelines_route_view_5215267527785660091, __questions_route_view_12647490021432456, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636 */
const __chunk_84 = makeLoad(() => {
    const src = fetch(new URL("./chunk_84.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __metrics_route_view_10763664316344963726, __pipelines_route_view_5215267527785660091, __questions_route_view_12647490021432456, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_85 = makeLoad(() => {
    const src = fetch(new URL("./chunk_85.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __metrics_route_view_10763664316344963726, __pipelines_route_view_5215267527785660091, __questions_route_view_12647490021432456, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __workers_route_view_5691969086229124019 */
const __chunk_86 = makeLoad(() => {
    const src = fetch(new URL("./chunk_86.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __metrics_route_view_10763664316344963726, __pipelines_route_view_5215267527785660091, __questions_route_view_12647490021432456, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154 */
const __chunk_87 = makeLoad(() => {
    const src = fetch(new URL("./chunk_87.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __metrics_route_view_10763664316344963726, __pipelines_route_view_5215267527785660091, __questions_route_view_12647490021432456, __run_metrics_route_view_13934760009932927630, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636 */
const __chunk_88 = makeLoad(() => {
    const src = fetch(new URL("./chunk_88.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __metrics_route_view_10763664316344963726, __pipelines_route_view_5215267527785660091, __questions_route_view_12647490021432456, __run_metrics_route_view_13934760009932927630, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_89 = makeLoad(() => {
    const src = fetch(new URL("./chunk_89.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __metrics_route_view_10763664316344963726, __pipelines_route_view_5215267527785660091, __run_metrics_route_view_13934760009932927630, __run_tasks_route_view_8236663687178172126, __tasks_route_view_14295397040217648636 */
const __chunk_90 = makeLoad(() => {
    const src = fetch(new URL("./chunk_90.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __metrics_route_view_10763664316344963726, __pipelines_route_view_5215267527785660091, __run_metrics_route_view_13934760009932927630, __run_tasks_route_view_8236663687178172126, __workers_route_view_5691969086229124019 */
const __chunk_91 = makeLoad(() => {
    const src = fetch(new URL("./chunk_91.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __metrics_route_view_10763664316344963726, __pipelines_route_view_5215267527785660091, __run_metrics_route_view_13934760009932927630, __workers_route_view_5691969086229124019 */
const __chunk_92 = makeLoad(() => {
    const src = fetch(new URL("./chunk_92.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __metrics_route_view_10763664316344963726, __questions_route_view_12647490021432456, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636 */
const __chunk_93 = makeLoad(() => {
    const src = fetch(new URL("./chunk_93.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __metrics_route_view_10763664316344963726, __questions_route_view_12647490021432456, __run_metrics_route_view_13934760009932927630, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __workers_route_view_5691969086229124019 */
const __chunk_94 = makeLoad(() => {
    const src = fetch(new URL("./chunk_94.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __metrics_route_view_10763664316344963726, __questions_route_view_12647490021432456, __run_metrics_route_view_13934760009932927630, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_95 = makeLoad(() => {
    const src = fetch(new URL("./chunk_95.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __metrics_route_view_10763664316344963726, __questions_route_view_12647490021432456, __run_metrics_route_view_13934760009932927630, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __workers_route_view_5691969086229124019 */
const __chunk_96 = makeLoad(() => {
    const src = fetch(new URL("./chunk_96.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __metrics_route_view_10763664316344963726, __questions_route_view_12647490021432456, __run_metrics_route_view_13934760009932927630, __run_tasks_route_view_8236663687178172126, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_97 = makeLoad(() => {
    const src = fetch(new URL("./chunk_97.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __metrics_route_view_10763664316344963726, __questions_route_view_12647490021432456, __run_metrics_route_view_13934760009932927630, __workers_route_view_5691969086229124019 */
const __chunk_98 = makeLoad(() => {
    const src = fetch(new URL("./chunk_98.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __metrics_route_view_10763664316344963726, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_tasks_route_view_8236663687178172126, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_99 = makeLoad(() => {
    const src = fetch(new URL("./chunk_99.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __metrics_route_view_10763664316344963726, __run_metrics_route_view_13934760009932927630 */
const __chunk_100 = makeLoad(() => {
    const src = fetch(new URL("./chunk_100.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __metrics_route_view_10763664316344963726, __run_metrics_route_view_13934760009932927630, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154 */
const __chunk_101 = makeLoad(() => {
    const src = fetch(new URL("./chunk_101.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __metrics_route_view_10763664316344963726, __run_metrics_route_view_13934760009932927630, __run_tasks_route_view_8236663687178172126, __tasks_route_view_14295397040217648636 */
const __chunk_102 = makeLoad(() => {
    const src = fetch(new URL("./chunk_102.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __metrics_route_view_10763664316344963726, __run_metrics_route_view_13934760009932927630, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_103 = makeLoad(() => {
    const src = fetch(new URL("./chunk_103.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __metrics_route_view_10763664316344963726, __run_metrics_route_view_13934760009932927630, __workers_route_view_5691969086229124019 */
const __chunk_104 = makeLoad(() => {
    const src = fetch(new URL("./chunk_104.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __pipelines_route_view_5215267527785660091 */
const __chunk_105 = makeLoad(() => {
    const src = fetch(new URL("./chunk_105.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __pipelines_route_view_5215267527785660091, __questions_route_view_12647490021432456, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636 */
const __chunk_106 = makeLoad(() => {
    const src = fetch(new URL("./chunk_106.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __pipelines_route_view_5215267527785660091, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __runs_route_view_9306783347148444582, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636 */
const __chunk_107 = makeLoad(() => {
    const src = fetch(new URL("./chunk_107.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __pipelines_route_view_5215267527785660091, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __runs_route_view_9306783347148444582, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_108 = makeLoad(() => {
    const src = fetch(new URL("./chunk_108.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __pipelines_route_view_5215267527785660091, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636 */
const __chunk_109 = makeLoad(() => {
    const src = fetch(new URL("./chunk_109.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __pipelines_route_view_5215267527785660091, __run_tasks_route_view_8236663687178172126 */
const __chunk_110 = makeLoad(() => {
    const src = fetch(new URL("./chunk_110.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __pipelines_route_view_5215267527785660091, __run_tasks_route_view_8236663687178172126, __tasks_route_view_14295397040217648636 */
const __chunk_111 = makeLoad(() => {
    const src = fetch(new URL("./chunk_111.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __questions_route_view_12647490021432456, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126 */
const __chunk_112 = makeLoad(() => {
    const src = fetch(new URL("./chunk_112.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __questions_route_view_12647490021432456, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636 */
const __chunk_113 = makeLoad(() => {
    const src = fetch(new URL("./chunk_113.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __questions_route_view_12647490021432456, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154 */
const __chunk_114 = makeLoad(() => {
    const src = fetch(new URL("./chunk_114.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __questions_route_view_12647490021432456, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636 */
const __chunk_115 = makeLoad(() => {
    const src = fetch(new URL("./chunk_115.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029 */
const __chunk_116 = makeLoad(() => {
    const src = fetch(new URL("./chunk_116.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_tasks_route_view_8236663687178172126 */
const __chunk_117 = makeLoad(() => {
    const src = fetch(new URL("./chunk_117.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __run_route_view_10522745204167366029 */
const __chunk_118 = makeLoad(() => {
    const src = fetch(new URL("./chunk_118.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126 */
const __chunk_119 = makeLoad(() => {
    const src = fetch(new URL("./chunk_119.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154 */
const __chunk_120 = makeLoad(() => {
    const src = fetch(new URL("./chunk_120.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636 */
const __chunk_121 = makeLoad(() => {
    const src = fetch(new URL("./chunk_121.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __run_tasks_route_view_8236663687178172126 */
const __chunk_122 = makeLoad(() => {
    const src = fetch(new URL("./chunk_122.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __run_tasks_route_view_8236663687178172126, __tasks_route_view_14295397040217648636 */
const __chunk_123 = makeLoad(() => {
    const src = fetch(new URL("./chunk_123.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __tasks_route_view_14295397040217648636 */
const __chunk_124 = makeLoad(() => {
    const src = fetch(new URL("./chunk_124.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __logs_route_view_9974463303994218624, __workers_route_view_5691969086229124019 */
const __chunk_125 = makeLoad(() => {
    const src = fetch(new URL("./chunk_125.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __metrics_route_view_10763664316344963726, __pipelines_route_view_5215267527785660091, __questions_route_view_12647490021432456, __run_metrics_route_view_13934760009932927630, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_126 = makeLoad(() => {
    const src = fetch(new URL("./chunk_126.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __metrics_route_view_10763664316344963726, __pipelines_route_view_5215267527785660091, __questions_route_view_12647490021432456, __run_metrics_route_view_13934760009932927630, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __workers_route_view_5691969086229124019 */
const __chunk_127 = makeLoad(() => {
    const src = fetch(new URL("./chunk_127.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __metrics_route_view_10763664316344963726, __pipelines_route_view_5215267527785660091, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __workers_route_view_5691969086229124019 */
const __chunk_128 = makeLoad(() => {
    const src = fetch(new URL("./chunk_128.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __metrics_route_view_10763664316344963726, __pipelines_route_view_5215267527785660091, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_129 = makeLoad(() => {
    const src = fetch(new URL("./chunk_129.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __metrics_route_view_10763664316344963726, __pipelines_route_view_5215267527785660091, __run_metrics_route_view_13934760009932927630, __run_tasks_route_view_8236663687178172126, __tasks_route_view_14295397040217648636 */
const __chunk_130 = makeLoad(() => {
    const src = fetch(new URL("./chunk_130.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __metrics_route_view_10763664316344963726, __pipelines_route_view_5215267527785660091, __run_metrics_route_view_13934760009932927630, __workers_route_view_5691969086229124019 */
const __chunk_131 = makeLoad(() => {
    const src = fetch(new URL("./chunk_131.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __metrics_route_view_10763664316344963726, __questions_route_view_12647490021432456, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __workers_route_view_5691969086229124019 */
const __chunk_132 = makeLoad(() => {
    const src = fetch(new URL("./chunk_132.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __metrics_route_view_10763664316344963726, __questions_route_view_12647490021432456, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __workers_route_view_5691969086229124019 */
const __chunk_133 = makeLoad(() => {
    const src = fetch(new URL("./chunk_133.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __metrics_route_view_10763664316344963726, __questions_route_view_12647490021432456, __run_metrics_route_view_13934760009932927630, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __workers_route_view_5691969086229124019 */
const __chunk_134 = makeLoad(() => {
    const src = fetch(new URL("./chunk_134.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __metrics_route_view_10763664316344963726, __questions_route_view_12647490021432456, __run_metrics_route_view_13934760009932927630, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_135 = makeLoad(() => {
    const src = fetch(new URL("./chunk_135.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __metrics_route_view_10763664316344963726, __questions_route_view_12647490021432456, __run_metrics_route_view_13934760009932927630, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __workers_route_view_5691969086229124019 */
const __chunk_136 = makeLoad(() => {
    const src = fetch(new URL("./chunk_136.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __metrics_route_view_10763664316344963726, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __workers_route_view_5691969086229124019 */
const __chunk_137 = makeLoad(() => {
    const src = fetch(new URL("./chunk_137.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __metrics_route_view_10763664316344963726, __run_metrics_route_view_13934760009932927630 */
const __chunk_138 = makeLoad(() => {
    const src = fetch(new URL("./chunk_138.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __metrics_route_view_10763664316344963726, __run_metrics_route_view_13934760009932927630, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_139 = makeLoad(() => {
    const src = fetch(new URL("./chunk_139.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __metrics_route_view_10763664316344963726, __run_metrics_route_view_13934760009932927630, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __workers_route_view_5691969086229124019 */
const __chunk_140 = makeLoad(() => {
    const src = fetch(new URL("./chunk_140.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __metrics_route_view_10763664316344963726, __run_metrics_route_view_13934760009932927630, __run_tasks_route_view_8236663687178172126, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_141 = makeLoad(() => {
    const src = fetch(new URL("./chunk_141.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __metrics_route_view_10763664316344963726, __run_metrics_route_view_13934760009932927630, __run_tasks_route_view_8236663687178172126, __workers_route_view_5691969086229124019 */
const __chunk_142 = makeLoad(() => {
    const src = fetch(new URL("./chunk_142.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __metrics_route_view_10763664316344963726, __run_metrics_route_view_13934760009932927630, __streaming_route_view_1694031240340446028, __workers_route_view_5691969086229124019 */
const __chunk_143 = makeLoad(() => {
    const src = fetch(new URL("./chunk_143.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __metrics_route_view_10763664316344963726, __run_metrics_route_view_13934760009932927630, __task_route_view_5273885161983263154, __workers_route_view_5691969086229124019 */
const __chunk_144 = makeLoad(() => {
    const src = fetch(new URL("./chunk_144.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __metrics_route_view_10763664316344963726, __run_metrics_route_view_13934760009932927630, __tasks_route_view_14295397040217648636 */
const __chunk_145 = makeLoad(() => {
    const src = fetch(new URL("./chunk_145.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __metrics_route_view_10763664316344963726, __run_metrics_route_view_13934760009932927630, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_146 = makeLoad(() => {
    const src = fetch(new URL("./chunk_146.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __metrics_route_view_10763664316344963726, __run_metrics_route_view_13934760009932927630, __workers_route_view_5691969086229124019 */
const __chunk_147 = makeLoad(() => {
    const src = fetch(new URL("./chunk_147.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __pipelines_route_view_5215267527785660091 */
const __chunk_148 = makeLoad(() => {
    const src = fetch(new URL("./chunk_148.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __pipelines_route_view_5215267527785660091, __questions_route_view_12647490021432456, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __runs_route_view_9306783347148444582, __task_route_view_5273885161983263154 */
const __chunk_149 = makeLoad(() => {
    const src = fetch(new URL("./chunk_149.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __pipelines_route_view_5215267527785660091, __run_route_view_10522745204167366029, __run_tasks_route_view_8236663687178172126, __runs_route_view_9306783347148444582, __workers_route_view_5691969086229124019 */
const __chunk_150 = makeLoad(() => {
    const src = fetch(new URL("./chunk_150.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __pipelines_route_view_5215267527785660091, __run_tasks_route_view_8236663687178172126 */
const __chunk_151 = makeLoad(() => {
    const src = fetch(new URL("./chunk_151.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __questions_route_view_12647490021432456 */
const __chunk_152 = makeLoad(() => {
    const src = fetch(new URL("./chunk_152.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __questions_route_view_12647490021432456, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154 */
const __chunk_153 = makeLoad(() => {
    const src = fetch(new URL("./chunk_153.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __questions_route_view_12647490021432456, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636 */
const __chunk_154 = makeLoad(() => {
    const src = fetch(new URL("./chunk_154.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __questions_route_view_12647490021432456, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __workers_route_view_5691969086229124019 */
const __chunk_155 = makeLoad(() => {
    const src = fetch(new URL("./chunk_155.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __questions_route_view_12647490021432456, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154 */
const __chunk_156 = makeLoad(() => {
    const src = fetch(new URL("./chunk_156.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __questions_route_view_12647490021432456, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636 */
const __chunk_157 = makeLoad(() => {
    const src = fetch(new URL("./chunk_157.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __questions_route_view_12647490021432456, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __workers_route_view_5691969086229124019 */
const __chunk_158 = makeLoad(() => {
    const src = fetch(new URL("./chunk_158.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __questions_route_view_12647490021432456, __run_tasks_route_view_8236663687178172126 */
const __chunk_159 = makeLoad(() => {
    const src = fetch(new URL("./chunk_159.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __questions_route_view_12647490021432456, __run_tasks_route_view_8236663687178172126, __workers_route_view_5691969086229124019 */
const __chunk_160 = makeLoad(() => {
    const src = fetch(new URL("./chunk_160.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __questions_route_view_12647490021432456, __tasks_route_view_14295397040217648636 */
const __chunk_161 = makeLoad(() => {
    const src = fetch(new URL("./chunk_161.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154 */
const __chunk_162 = makeLoad(() => {
    const src = fetch(new URL("./chunk_162.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636 */
const __chunk_163 = makeLoad(() => {
    const src = fetch(new URL("./chunk_163.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154 */
const __chunk_164 = makeLoad(() => {
    const src = fetch(new URL("./chunk_164.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __tasks_route_view_14295397040217648636 */
const __chunk_165 = makeLoad(() => {
    const src = fetch(new URL("./chunk_165.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_tasks_route_view_8236663687178172126 */
const __chunk_166 = makeLoad(() => {
    const src = fetch(new URL("./chunk_166.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __task_route_view_5273885161983263154 */
const __chunk_167 = makeLoad(() => {
    const src = fetch(new URL("./chunk_167.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __run_route_view_10522745204167366029 */
const __chunk_168 = makeLoad(() => {
    const src = fetch(new URL("./chunk_168.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __run_route_view_10522745204167366029, __streaming_route_view_1694031240340446028 */
const __chunk_169 = makeLoad(() => {
    const src = fetch(new URL("./chunk_169.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126 */
const __chunk_170 = makeLoad(() => {
    const src = fetch(new URL("./chunk_170.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636 */
const __chunk_171 = makeLoad(() => {
    const src = fetch(new URL("./chunk_171.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154 */
const __chunk_172 = makeLoad(() => {
    const src = fetch(new URL("./chunk_172.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_173 = makeLoad(() => {
    const src = fetch(new URL("./chunk_173.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __run_tasks_route_view_8236663687178172126 */
const __chunk_174 = makeLoad(() => {
    const src = fetch(new URL("./chunk_174.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __run_tasks_route_view_8236663687178172126, __tasks_route_view_14295397040217648636 */
const __chunk_175 = makeLoad(() => {
    const src = fetch(new URL("./chunk_175.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __run_tasks_route_view_8236663687178172126, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_176 = makeLoad(() => {
    const src = fetch(new URL("./chunk_176.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __runs_route_view_9306783347148444582 */
const __chunk_177 = makeLoad(() => {
    const src = fetch(new URL("./chunk_177.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __tasks_route_view_14295397040217648636 */
const __chunk_178 = makeLoad(() => {
    const src = fetch(new URL("./chunk_178.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_179 = makeLoad(() => {
    const src = fetch(new URL("./chunk_179.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __custom_route_view_6937619327317363136, __workers_route_view_5691969086229124019 */
const __chunk_180 = makeLoad(() => {
    const src = fetch(new URL("./chunk_180.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __errors_route_view_3291641260738289357, __metrics_route_view_10763664316344963726, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630 */
const __chunk_181 = makeLoad(() => {
    const src = fetch(new URL("./chunk_181.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __errors_route_view_3291641260738289357, __run_errors_route_view_6651743297476197593 */
const __chunk_182 = makeLoad(() => {
    const src = fetch(new URL("./chunk_182.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __errors_route_view_3291641260738289357, __run_errors_route_view_6651743297476197593, __run_task_route_view_4093065451666268766, __runs_route_view_9306783347148444582, __task_route_view_5273885161983263154 */
const __chunk_183 = makeLoad(() => {
    const src = fetch(new URL("./chunk_183.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __errors_route_view_3291641260738289357, __run_errors_route_view_6651743297476197593, __streaming_route_view_1694031240340446028 */
const __chunk_184 = makeLoad(() => {
    const src = fetch(new URL("./chunk_184.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __errors_route_view_3291641260738289357, __run_errors_route_view_6651743297476197593, __streaming_route_view_1694031240340446028, __workers_route_view_5691969086229124019 */
const __chunk_185 = makeLoad(() => {
    const src = fetch(new URL("./chunk_185.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __errors_route_view_3291641260738289357, __run_errors_route_view_6651743297476197593, __tasks_route_view_14295397040217648636 */
const __chunk_186 = makeLoad(() => {
    const src = fetch(new URL("./chunk_186.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __errors_route_view_3291641260738289357, __run_errors_route_view_6651743297476197593, __workers_route_view_5691969086229124019 */
const __chunk_187 = makeLoad(() => {
    const src = fetch(new URL("./chunk_187.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __errors_route_view_3291641260738289357, __streaming_route_view_1694031240340446028 */
const __chunk_188 = makeLoad(() => {
    const src = fetch(new URL("./chunk_188.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __errors_route_view_3291641260738289357, __streaming_route_view_1694031240340446028, __workers_route_view_5691969086229124019 */
const __chunk_189 = makeLoad(() => {
    const src = fetch(new URL("./chunk_189.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __metrics_route_view_10763664316344963726, __pipelines_route_view_5215267527785660091, __questions_route_view_12647490021432456, __run_metrics_route_view_13934760009932927630, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154 */
const __chunk_190 = makeLoad(() => {
    const src = fetch(new URL("./chunk_190.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __metrics_route_view_10763664316344963726, __pipelines_route_view_5215267527785660091, __run_metrics_route_view_13934760009932927630 */
const __chunk_191 = makeLoad(() => {
    const src = fetch(new URL("./chunk_191.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __metrics_route_view_10763664316344963726, __pipelines_route_view_5215267527785660091, __run_metrics_route_view_13934760009932927630, __run_tasks_route_view_8236663687178172126, __tasks_route_view_14295397040217648636 */
const __chunk_192 = makeLoad(() => {
    const src = fetch(new URL("./chunk_192.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __metrics_route_view_10763664316344963726, __questions_route_view_12647490021432456, __run_metrics_route_view_13934760009932927630, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154 */
const __chunk_193 = makeLoad(() => {
    const src = fetch(new URL("./chunk_193.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __metrics_route_view_10763664316344963726, __questions_route_view_12647490021432456, __run_metrics_route_view_13934760009932927630, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636 */
const __chunk_194 = makeLoad(() => {
    const src = fetch(new URL("./chunk_194.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __metrics_route_view_10763664316344963726, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029 */
const __chunk_195 = makeLoad(() => {
    const src = fetch(new URL("./chunk_195.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __metrics_route_view_10763664316344963726, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154 */
const __chunk_196 = makeLoad(() => {
    const src = fetch(new URL("./chunk_196.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __metrics_route_view_10763664316344963726, __run_metrics_route_view_13934760009932927630 */
const __chunk_197 = makeLoad(() => {
    const src = fetch(new URL("./chunk_197.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __metrics_route_view_10763664316344963726, __run_metrics_route_view_13934760009932927630, __run_task_route_view_4093065451666268766 */
const __chunk_198 = makeLoad(() => {
    const src = fetch(new URL("./chunk_198.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __metrics_route_view_10763664316344963726, __run_metrics_route_view_13934760009932927630, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154 */
const __chunk_199 = makeLoad(() => {
    const src = fetch(new URL("./chunk_199.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __metrics_route_view_10763664316344963726, __run_metrics_route_view_13934760009932927630, __run_tasks_route_view_8236663687178172126 */
const __chunk_200 = makeLoad(() => {
    const src = fetch(new URL("./chunk_200.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __metrics_route_view_10763664316344963726, __run_metrics_route_view_13934760009932927630, __run_tasks_route_view_8236663687178172126, __tasks_route_view_14295397040217648636 */
const __chunk_201 = makeLoad(() => {
    const src = fetch(new URL("./chunk_201.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __metrics_route_view_10763664316344963726, __run_metrics_route_view_13934760009932927630, __runs_route_view_9306783347148444582, __workers_route_view_5691969086229124019 */
const __chunk_202 = makeLoad(() => {
    const src = fetch(new URL("./chunk_202.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __pipelines_route_view_5215267527785660091, __questions_route_view_12647490021432456, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __runs_route_view_9306783347148444582 */
const __chunk_203 = makeLoad(() => {
    const src = fetch(new URL("./chunk_203.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __pipelines_route_view_5215267527785660091, __questions_route_view_12647490021432456, __run_task_route_view_4093065451666268766, __streaming_route_view_1694031240340446028, __task_route_view_5273885161983263154 */
const __chunk_204 = makeLoad(() => {
    const src = fetch(new URL("./chunk_204.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __pipelines_route_view_5215267527785660091, __questions_route_view_12647490021432456, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154 */
const __chunk_205 = makeLoad(() => {
    const src = fetch(new URL("./chunk_205.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __pipelines_route_view_5215267527785660091, __questions_route_view_12647490021432456, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636 */
const __chunk_206 = makeLoad(() => {
    const src = fetch(new URL("./chunk_206.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __pipelines_route_view_5215267527785660091, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __runs_route_view_9306783347148444582 */
const __chunk_207 = makeLoad(() => {
    const src = fetch(new URL("./chunk_207.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __pipelines_route_view_5215267527785660091, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_tasks_route_view_8236663687178172126, __runs_route_view_9306783347148444582 */
const __chunk_208 = makeLoad(() => {
    const src = fetch(new URL("./chunk_208.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __pipelines_route_view_5215267527785660091, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154 */
const __chunk_209 = makeLoad(() => {
    const src = fetch(new URL("./chunk_209.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __pipelines_route_view_5215267527785660091, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636 */
const __chunk_210 = makeLoad(() => {
    const src = fetch(new URL("./chunk_210.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __pipelines_route_view_5215267527785660091, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636 */
const __chunk_211 = makeLoad(() => {
    const src = fetch(new URL("./chunk_211.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __pipelines_route_view_5215267527785660091, __run_tasks_route_view_8236663687178172126 */
const __chunk_212 = makeLoad(() => {
    const src = fetch(new URL("./chunk_212.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __pipelines_route_view_5215267527785660091, __runs_route_view_9306783347148444582 */
const __chunk_213 = makeLoad(() => {
    const src = fetch(new URL("./chunk_213.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __pipelines_route_view_5215267527785660091, __runs_route_view_9306783347148444582, __workers_route_view_5691969086229124019 */
const __chunk_214 = makeLoad(() => {
    const src = fetch(new URL("./chunk_214.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __pipelines_route_view_5215267527785660091, __tasks_route_view_14295397040217648636 */
const __chunk_215 = makeLoad(() => {
    const src = fetch(new URL("./chunk_215.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __questions_route_view_12647490021432456, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154 */
const __chunk_216 = makeLoad(() => {
    const src = fetch(new URL("./chunk_216.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __questions_route_view_12647490021432456, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __runs_route_view_9306783347148444582, __task_route_view_5273885161983263154 */
const __chunk_217 = makeLoad(() => {
    const src = fetch(new URL("./chunk_217.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __questions_route_view_12647490021432456, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154 */
const __chunk_218 = makeLoad(() => {
    const src = fetch(new URL("./chunk_218.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __questions_route_view_12647490021432456, __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __workers_route_view_5691969086229124019 */
const __chunk_219 = makeLoad(() => {
    const src = fetch(new URL("./chunk_219.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __questions_route_view_12647490021432456, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154 */
const __chunk_220 = makeLoad(() => {
    const src = fetch(new URL("./chunk_220.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __questions_route_view_12647490021432456, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154 */
const __chunk_221 = makeLoad(() => {
    const src = fetch(new URL("./chunk_221.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __questions_route_view_12647490021432456, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636 */
const __chunk_222 = makeLoad(() => {
    const src = fetch(new URL("./chunk_222.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __questions_route_view_12647490021432456, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_223 = makeLoad(() => {
    const src = fetch(new URL("./chunk_223.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __questions_route_view_12647490021432456, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154 */
const __chunk_224 = makeLoad(() => {
    const src = fetch(new URL("./chunk_224.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __questions_route_view_12647490021432456, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636 */
const __chunk_225 = makeLoad(() => {
    const src = fetch(new URL("./chunk_225.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __questions_route_view_12647490021432456, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_226 = makeLoad(() => {
    const src = fetch(new URL("./chunk_226.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __questions_route_view_12647490021432456, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __workers_route_view_5691969086229124019 */
const __chunk_227 = makeLoad(() => {
    const src = fetch(new URL("./chunk_227.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __questions_route_view_12647490021432456, __run_tasks_route_view_8236663687178172126 */
const __chunk_228 = makeLoad(() => {
    const src = fetch(new URL("./chunk_228.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __questions_route_view_12647490021432456, __task_route_view_5273885161983263154 */
const __chunk_229 = makeLoad(() => {
    const src = fetch(new URL("./chunk_229.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __questions_route_view_12647490021432456, __tasks_route_view_14295397040217648636 */
const __chunk_230 = makeLoad(() => {
    const src = fetch(new URL("./chunk_230.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __questions_route_view_12647490021432456, __workers_route_view_5691969086229124019 */
const __chunk_231 = makeLoad(() => {
    const src = fetch(new URL("./chunk_231.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029 */
const __chunk_232 = makeLoad(() => {
    const src = fetch(new URL("./chunk_232.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766 */
const __chunk_233 = makeLoad(() => {
    const src = fetch(new URL("./chunk_233.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126 */
const __chunk_234 = makeLoad(() => {
    const src = fetch(new URL("./chunk_234.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __runs_route_view_9306783347148444582 */
const __chunk_235 = makeLoad(() => {
    const src = fetch(new URL("./chunk_235.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154 */
const __chunk_236 = makeLoad(() => {
    const src = fetch(new URL("./chunk_236.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154 */
const __chunk_237 = makeLoad(() => {
    const src = fetch(new URL("./chunk_237.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_tasks_route_view_8236663687178172126 */
const __chunk_238 = makeLoad(() => {
    const src = fetch(new URL("./chunk_238.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_tasks_route_view_8236663687178172126, __runs_route_view_9306783347148444582 */
const __chunk_239 = makeLoad(() => {
    const src = fetch(new URL("./chunk_239.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __run_tasks_route_view_8236663687178172126, __tasks_route_view_14295397040217648636 */
const __chunk_240 = makeLoad(() => {
    const src = fetch(new URL("./chunk_240.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __run_errors_route_view_6651743297476197593, __run_metrics_route_view_13934760009932927630, __run_route_view_10522745204167366029, __task_route_view_5273885161983263154 */
const __chunk_241 = makeLoad(() => {
    const src = fetch(new URL("./chunk_241.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __run_errors_route_view_6651743297476197593, __run_route_view_10522745204167366029 */
const __chunk_242 = makeLoad(() => {
    const src = fetch(new URL("./chunk_242.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __run_metrics_route_view_13934760009932927630, __run_tasks_route_view_8236663687178172126 */
const __chunk_243 = makeLoad(() => {
    const src = fetch(new URL("./chunk_243.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_244 = makeLoad(() => {
    const src = fetch(new URL("./chunk_244.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_245 = makeLoad(() => {
    const src = fetch(new URL("./chunk_245.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __run_route_view_10522745204167366029, __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __workers_route_view_5691969086229124019 */
const __chunk_246 = makeLoad(() => {
    const src = fetch(new URL("./chunk_246.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __run_route_view_10522745204167366029, __run_tasks_route_view_8236663687178172126, __streaming_route_view_1694031240340446028 */
const __chunk_247 = makeLoad(() => {
    const src = fetch(new URL("./chunk_247.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __run_route_view_10522745204167366029, __streaming_route_view_1694031240340446028 */
const __chunk_248 = makeLoad(() => {
    const src = fetch(new URL("./chunk_248.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154 */
const __chunk_249 = makeLoad(() => {
    const src = fetch(new URL("./chunk_249.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __run_task_route_view_4093065451666268766, __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636 */
const __chunk_250 = makeLoad(() => {
    const src = fetch(new URL("./chunk_250.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __run_task_route_view_4093065451666268766, __runs_route_view_9306783347148444582, __task_route_view_5273885161983263154 */
const __chunk_251 = makeLoad(() => {
    const src = fetch(new URL("./chunk_251.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __run_task_route_view_4093065451666268766, __runs_route_view_9306783347148444582, __task_route_view_5273885161983263154, __workers_route_view_5691969086229124019 */
const __chunk_252 = makeLoad(() => {
    const src = fetch(new URL("./chunk_252.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __run_task_route_view_4093065451666268766, __streaming_route_view_1694031240340446028, __task_route_view_5273885161983263154 */
const __chunk_253 = makeLoad(() => {
    const src = fetch(new URL("./chunk_253.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __run_task_route_view_4093065451666268766, __streaming_route_view_1694031240340446028, __task_route_view_5273885161983263154, __workers_route_view_5691969086229124019 */
const __chunk_254 = makeLoad(() => {
    const src = fetch(new URL("./chunk_254.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154 */
const __chunk_255 = makeLoad(() => {
    const src = fetch(new URL("./chunk_255.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636 */
const __chunk_256 = makeLoad(() => {
    const src = fetch(new URL("./chunk_256.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_257 = makeLoad(() => {
    const src = fetch(new URL("./chunk_257.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __run_task_route_view_4093065451666268766, __task_route_view_5273885161983263154, __workers_route_view_5691969086229124019 */
const __chunk_258 = makeLoad(() => {
    const src = fetch(new URL("./chunk_258.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __run_tasks_route_view_8236663687178172126, __runs_route_view_9306783347148444582, __tasks_route_view_14295397040217648636 */
const __chunk_259 = makeLoad(() => {
    const src = fetch(new URL("./chunk_259.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __run_tasks_route_view_8236663687178172126, __task_route_view_5273885161983263154 */
const __chunk_260 = makeLoad(() => {
    const src = fetch(new URL("./chunk_260.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __run_tasks_route_view_8236663687178172126, __tasks_route_view_14295397040217648636 */
const __chunk_261 = makeLoad(() => {
    const src = fetch(new URL("./chunk_261.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __run_tasks_route_view_8236663687178172126, __workers_route_view_5691969086229124019 */
const __chunk_262 = makeLoad(() => {
    const src = fetch(new URL("./chunk_262.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __runs_route_view_9306783347148444582, __workers_route_view_5691969086229124019 */
const __chunk_263 = makeLoad(() => {
    const src = fetch(new URL("./chunk_263.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
/* __tasks_route_view_14295397040217648636, __workers_route_view_5691969086229124019 */
const __chunk_264 = makeLoad(() => {
    const src = fetch(new URL("./chunk_264.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, []);
export const __wasm_split_load___workers_route_view_5691969086229124019 = wrapAsyncCb(makeLoad(() => {
    const src = fetch(new URL("./split___workers_route_view_5691969086229124019.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, [__chunk_19, __chunk_20, __chunk_21, __chunk_22, __chunk_26, __chunk_27, __chunk_28, __chunk_29, __chunk_30, __chunk_32, __chunk_34, __chunk_35, __chunk_36, __chunk_37, __chunk_38, __chunk_39, __chunk_40, __chunk_41, __chunk_43, __chunk_44, __chunk_45, __chunk_46, __chunk_47, __chunk_52, __chunk_53, __chunk_55, __chunk_56, __chunk_57, __chunk_58, __chunk_59, __chunk_60, __chunk_61, __chunk_67, __chunk_68, __chunk_73, __chunk_74, __chunk_76, __chunk_77, __chunk_81, __chunk_83, __chunk_85, __chunk_86, __chunk_89, __chunk_91, __chunk_92, __chunk_94, __chunk_95, __chunk_96, __chunk_97, __chunk_98, __chunk_99, __chunk_103, __chunk_104, __chunk_108, __chunk_125, __chunk_126, __chunk_127, __chunk_128, __chunk_129, __chunk_131, __chunk_132, __chunk_133, __chunk_134, __chunk_135, __chunk_136, __chunk_137, __chunk_139, __chunk_140, __chunk_141, __chunk_142, __chunk_143, __chunk_144, __chunk_146, __chunk_147, __chunk_150, __chunk_155, __chunk_158, __chunk_160, __chunk_173, __chunk_176, __chunk_179, __chunk_180, __chunk_185, __chunk_187, __chunk_189, __chunk_202, __chunk_214, __chunk_219, __chunk_223, __chunk_226, __chunk_227, __chunk_231, __chunk_244, __chunk_245, __chunk_246, __chunk_252, __chunk_254, __chunk_257, __chunk_258, __chunk_262, __chunk_263, __chunk_264]));
export const __wasm_split_load___tasks_route_view_14295397040217648636 = wrapAsyncCb(makeLoad(() => {
    const src = fetch(new URL("./split___tasks_route_view_14295397040217648636.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, [__chunk_19, __chunk_21, __chunk_22, __chunk_26, __chunk_28, __chunk_29, __chunk_31, __chunk_32, __chunk_35, __chunk_36, __chunk_37, __chunk_38, __chunk_39, __chunk_41, __chunk_42, __chunk_45, __chunk_47, __chunk_50, __chunk_51, __chunk_52, __chunk_54, __chunk_55, __chunk_58, __chunk_63, __chunk_64, __chunk_66, __chunk_67, __chunk_72, __chunk_75, __chunk_76, __chunk_77, __chunk_84, __chunk_85, __chunk_88, __chunk_89, __chunk_90, __chunk_93, __chunk_95, __chunk_97, __chunk_99, __chunk_102, __chunk_103, __chunk_106, __chunk_107, __chunk_108, __chunk_109, __chunk_111, __chunk_113, __chunk_115, __chunk_121, __chunk_123, __chunk_124, __chunk_126, __chunk_129, __chunk_130, __chunk_135, __chunk_139, __chunk_141, __chunk_145, __chunk_146, __chunk_154, __chunk_157, __chunk_161, __chunk_163, __chunk_165, __chunk_171, __chunk_173, __chunk_175, __chunk_176, __chunk_178, __chunk_179, __chunk_186, __chunk_192, __chunk_194, __chunk_201, __chunk_206, __chunk_210, __chunk_211, __chunk_215, __chunk_222, __chunk_223, __chunk_225, __chunk_226, __chunk_230, __chunk_240, __chunk_244, __chunk_245, __chunk_250, __chunk_256, __chunk_257, __chunk_259, __chunk_261, __chunk_264]));
export const __wasm_split_load___task_route_view_5273885161983263154 = wrapAsyncCb(makeLoad(() => {
    const src = fetch(new URL("./split___task_route_view_5273885161983263154.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, [__chunk_19, __chunk_20, __chunk_21, __chunk_22, __chunk_23, __chunk_24, __chunk_26, __chunk_27, __chunk_28, __chunk_29, __chunk_30, __chunk_32, __chunk_33, __chunk_34, __chunk_35, __chunk_36, __chunk_37, __chunk_39, __chunk_40, __chunk_44, __chunk_45, __chunk_46, __chunk_47, __chunk_48, __chunk_50, __chunk_51, __chunk_52, __chunk_53, __chunk_54, __chunk_55, __chunk_56, __chunk_57, __chunk_58, __chunk_59, __chunk_60, __chunk_62, __chunk_63, __chunk_64, __chunk_65, __chunk_66, __chunk_67, __chunk_68, __chunk_70, __chunk_71, __chunk_74, __chunk_77, __chunk_79, __chunk_80, __chunk_83, __chunk_84, __chunk_85, __chunk_86, __chunk_87, __chunk_88, __chunk_89, __chunk_93, __chunk_94, __chunk_95, __chunk_96, __chunk_101, __chunk_106, __chunk_107, __chunk_108, __chunk_109, __chunk_113, __chunk_114, __chunk_115, __chunk_120, __chunk_121, __chunk_126, __chunk_127, __chunk_128, __chunk_132, __chunk_133, __chunk_134, __chunk_135, __chunk_136, __chunk_139, __chunk_140, __chunk_144, __chunk_149, __chunk_153, __chunk_154, __chunk_155, __chunk_156, __chunk_157, __chunk_158, __chunk_162, __chunk_163, __chunk_164, __chunk_167, __chunk_171, __chunk_172, __chunk_173, __chunk_183, __chunk_190, __chunk_193, __chunk_194, __chunk_196, __chunk_199, __chunk_204, __chunk_205, __chunk_206, __chunk_209, __chunk_210, __chunk_211, __chunk_216, __chunk_217, __chunk_218, __chunk_219, __chunk_220, __chunk_221, __chunk_222, __chunk_223, __chunk_224, __chunk_225, __chunk_226, __chunk_227, __chunk_229, __chunk_236, __chunk_237, __chunk_241, __chunk_244, __chunk_245, __chunk_246, __chunk_249, __chunk_250, __chunk_251, __chunk_252, __chunk_253, __chunk_254, __chunk_255, __chunk_256, __chunk_257, __chunk_258, __chunk_260]));
export const __wasm_split_load___streaming_route_view_1694031240340446028 = wrapAsyncCb(makeLoad(() => {
    const src = fetch(new URL("./split___streaming_route_view_1694031240340446028.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, [__chunk_19, __chunk_20, __chunk_22, __chunk_24, __chunk_32, __chunk_47, __chunk_74, __chunk_76, __chunk_77, __chunk_81, __chunk_143, __chunk_169, __chunk_184, __chunk_185, __chunk_188, __chunk_189, __chunk_204, __chunk_247, __chunk_248, __chunk_253, __chunk_254]));
export const __wasm_split_load___runs_route_view_9306783347148444582 = wrapAsyncCb(makeLoad(() => {
    const src = fetch(new URL("./split___runs_route_view_9306783347148444582.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, [__chunk_19, __chunk_20, __chunk_26, __chunk_27, __chunk_32, __chunk_33, __chunk_34, __chunk_37, __chunk_44, __chunk_57, __chunk_70, __chunk_83, __chunk_107, __chunk_108, __chunk_149, __chunk_150, __chunk_177, __chunk_183, __chunk_202, __chunk_203, __chunk_207, __chunk_208, __chunk_213, __chunk_214, __chunk_217, __chunk_235, __chunk_239, __chunk_251, __chunk_252, __chunk_259, __chunk_263]));
export const __wasm_split_load___run_tasks_route_view_8236663687178172126 = wrapAsyncCb(makeLoad(() => {
    const src = fetch(new URL("./split___run_tasks_route_view_8236663687178172126.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, [__chunk_19, __chunk_20, __chunk_21, __chunk_26, __chunk_27, __chunk_28, __chunk_31, __chunk_32, __chunk_33, __chunk_34, __chunk_35, __chunk_37, __chunk_39, __chunk_41, __chunk_45, __chunk_50, __chunk_51, __chunk_52, __chunk_53, __chunk_54, __chunk_55, __chunk_56, __chunk_63, __chunk_64, __chunk_69, __chunk_83, __chunk_84, __chunk_85, __chunk_86, __chunk_88, __chunk_89, __chunk_90, __chunk_91, __chunk_93, __chunk_94, __chunk_97, __chunk_99, __chunk_102, __chunk_106, __chunk_110, __chunk_111, __chunk_112, __chunk_113, __chunk_117, __chunk_119, __chunk_122, __chunk_123, __chunk_126, __chunk_127, __chunk_128, __chunk_130, __chunk_132, __chunk_134, __chunk_141, __chunk_142, __chunk_149, __chunk_150, __chunk_151, __chunk_153, __chunk_154, __chunk_155, __chunk_159, __chunk_160, __chunk_162, __chunk_163, __chunk_166, __chunk_170, __chunk_171, __chunk_174, __chunk_175, __chunk_176, __chunk_192, __chunk_196, __chunk_200, __chunk_201, __chunk_203, __chunk_207, __chunk_208, __chunk_209, __chunk_210, __chunk_212, __chunk_216, __chunk_221, __chunk_222, __chunk_223, __chunk_228, __chunk_234, __chunk_235, __chunk_236, __chunk_238, __chunk_239, __chunk_240, __chunk_243, __chunk_244, __chunk_247, __chunk_249, __chunk_250, __chunk_259, __chunk_260, __chunk_261, __chunk_262]));
export const __wasm_split_load___run_task_route_view_4093065451666268766 = wrapAsyncCb(makeLoad(() => {
    const src = fetch(new URL("./split___run_task_route_view_4093065451666268766.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, [__chunk_19, __chunk_20, __chunk_21, __chunk_22, __chunk_23, __chunk_24, __chunk_26, __chunk_27, __chunk_28, __chunk_29, __chunk_30, __chunk_32, __chunk_33, __chunk_34, __chunk_35, __chunk_36, __chunk_38, __chunk_39, __chunk_40, __chunk_45, __chunk_46, __chunk_47, __chunk_48, __chunk_50, __chunk_51, __chunk_52, __chunk_53, __chunk_54, __chunk_55, __chunk_56, __chunk_57, __chunk_58, __chunk_59, __chunk_62, __chunk_63, __chunk_64, __chunk_65, __chunk_66, __chunk_67, __chunk_68, __chunk_74, __chunk_77, __chunk_79, __chunk_80, __chunk_83, __chunk_84, __chunk_85, __chunk_86, __chunk_87, __chunk_88, __chunk_89, __chunk_93, __chunk_94, __chunk_95, __chunk_96, __chunk_101, __chunk_106, __chunk_107, __chunk_108, __chunk_109, __chunk_112, __chunk_113, __chunk_114, __chunk_115, __chunk_119, __chunk_120, __chunk_121, __chunk_126, __chunk_127, __chunk_128, __chunk_132, __chunk_133, __chunk_134, __chunk_135, __chunk_136, __chunk_139, __chunk_140, __chunk_149, __chunk_153, __chunk_154, __chunk_155, __chunk_156, __chunk_157, __chunk_158, __chunk_162, __chunk_163, __chunk_164, __chunk_165, __chunk_170, __chunk_171, __chunk_172, __chunk_173, __chunk_183, __chunk_190, __chunk_193, __chunk_194, __chunk_196, __chunk_198, __chunk_199, __chunk_203, __chunk_204, __chunk_205, __chunk_206, __chunk_207, __chunk_209, __chunk_210, __chunk_211, __chunk_216, __chunk_217, __chunk_218, __chunk_219, __chunk_220, __chunk_221, __chunk_222, __chunk_223, __chunk_224, __chunk_225, __chunk_226, __chunk_227, __chunk_233, __chunk_234, __chunk_235, __chunk_236, __chunk_237, __chunk_244, __chunk_245, __chunk_246, __chunk_249, __chunk_250, __chunk_251, __chunk_252, __chunk_253, __chunk_254, __chunk_255, __chunk_256, __chunk_257, __chunk_258]));
export const __wasm_split_load___run_route_view_10522745204167366029 = wrapAsyncCb(makeLoad(() => {
    const src = fetch(new URL("./split___run_route_view_10522745204167366029.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, [__chunk_19, __chunk_20, __chunk_21, __chunk_22, __chunk_24, __chunk_26, __chunk_27, __chunk_32, __chunk_33, __chunk_34, __chunk_38, __chunk_50, __chunk_62, __chunk_63, __chunk_74, __chunk_79, __chunk_83, __chunk_84, __chunk_85, __chunk_86, __chunk_87, __chunk_93, __chunk_99, __chunk_107, __chunk_108, __chunk_116, __chunk_117, __chunk_118, __chunk_128, __chunk_129, __chunk_132, __chunk_133, __chunk_137, __chunk_149, __chunk_150, __chunk_153, __chunk_154, __chunk_162, __chunk_163, __chunk_164, __chunk_165, __chunk_166, __chunk_167, __chunk_168, __chunk_169, __chunk_195, __chunk_196, __chunk_203, __chunk_207, __chunk_208, __chunk_216, __chunk_217, __chunk_218, __chunk_219, __chunk_220, __chunk_232, __chunk_233, __chunk_234, __chunk_235, __chunk_236, __chunk_237, __chunk_238, __chunk_239, __chunk_240, __chunk_241, __chunk_242, __chunk_244, __chunk_245, __chunk_246, __chunk_247, __chunk_248]));
export const __wasm_split_load___run_metrics_route_view_13934760009932927630 = wrapAsyncCb(makeLoad(() => {
    const src = fetch(new URL("./split___run_metrics_route_view_13934760009932927630.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, [__chunk_19, __chunk_20, __chunk_21, __chunk_22, __chunk_23, __chunk_26, __chunk_27, __chunk_28, __chunk_32, __chunk_33, __chunk_34, __chunk_35, __chunk_36, __chunk_37, __chunk_38, __chunk_39, __chunk_40, __chunk_41, __chunk_42, __chunk_43, __chunk_48, __chunk_49, __chunk_62, __chunk_74, __chunk_75, __chunk_76, __chunk_79, __chunk_83, __chunk_84, __chunk_85, __chunk_86, __chunk_87, __chunk_88, __chunk_89, __chunk_90, __chunk_91, __chunk_92, __chunk_93, __chunk_94, __chunk_95, __chunk_96, __chunk_97, __chunk_98, __chunk_99, __chunk_100, __chunk_101, __chunk_102, __chunk_103, __chunk_104, __chunk_107, __chunk_108, __chunk_116, __chunk_117, __chunk_126, __chunk_127, __chunk_128, __chunk_129, __chunk_130, __chunk_131, __chunk_132, __chunk_133, __chunk_134, __chunk_135, __chunk_136, __chunk_137, __chunk_138, __chunk_139, __chunk_140, __chunk_141, __chunk_142, __chunk_143, __chunk_144, __chunk_145, __chunk_146, __chunk_147, __chunk_149, __chunk_153, __chunk_154, __chunk_162, __chunk_163, __chunk_164, __chunk_165, __chunk_166, __chunk_167, __chunk_181, __chunk_190, __chunk_191, __chunk_192, __chunk_193, __chunk_194, __chunk_195, __chunk_196, __chunk_197, __chunk_198, __chunk_199, __chunk_200, __chunk_201, __chunk_202, __chunk_203, __chunk_207, __chunk_208, __chunk_216, __chunk_217, __chunk_218, __chunk_219, __chunk_232, __chunk_233, __chunk_234, __chunk_235, __chunk_236, __chunk_237, __chunk_238, __chunk_239, __chunk_240, __chunk_241, __chunk_243]));
export const __wasm_split_load___run_errors_route_view_6651743297476197593 = wrapAsyncCb(makeLoad(() => {
    const src = fetch(new URL("./split___run_errors_route_view_6651743297476197593.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, [__chunk_19, __chunk_20, __chunk_21, __chunk_22, __chunk_23, __chunk_24, __chunk_26, __chunk_27, __chunk_32, __chunk_33, __chunk_34, __chunk_38, __chunk_62, __chunk_74, __chunk_75, __chunk_78, __chunk_79, __chunk_80, __chunk_83, __chunk_84, __chunk_85, __chunk_86, __chunk_87, __chunk_93, __chunk_99, __chunk_107, __chunk_108, __chunk_116, __chunk_117, __chunk_128, __chunk_129, __chunk_132, __chunk_133, __chunk_137, __chunk_149, __chunk_153, __chunk_154, __chunk_162, __chunk_163, __chunk_164, __chunk_165, __chunk_166, __chunk_167, __chunk_181, __chunk_182, __chunk_183, __chunk_184, __chunk_185, __chunk_186, __chunk_187, __chunk_195, __chunk_196, __chunk_203, __chunk_207, __chunk_208, __chunk_216, __chunk_217, __chunk_218, __chunk_219, __chunk_232, __chunk_233, __chunk_234, __chunk_235, __chunk_236, __chunk_237, __chunk_238, __chunk_239, __chunk_240, __chunk_241, __chunk_242]));
export const __wasm_split_load___questions_route_view_12647490021432456 = wrapAsyncCb(makeLoad(() => {
    const src = fetch(new URL("./split___questions_route_view_12647490021432456.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, [__chunk_19, __chunk_20, __chunk_21, __chunk_22, __chunk_26, __chunk_27, __chunk_28, __chunk_29, __chunk_30, __chunk_32, __chunk_33, __chunk_34, __chunk_35, __chunk_36, __chunk_37, __chunk_44, __chunk_48, __chunk_54, __chunk_55, __chunk_56, __chunk_57, __chunk_58, __chunk_59, __chunk_60, __chunk_61, __chunk_75, __chunk_77, __chunk_83, __chunk_84, __chunk_85, __chunk_86, __chunk_87, __chunk_88, __chunk_89, __chunk_93, __chunk_94, __chunk_95, __chunk_96, __chunk_97, __chunk_98, __chunk_106, __chunk_112, __chunk_113, __chunk_114, __chunk_115, __chunk_126, __chunk_127, __chunk_132, __chunk_133, __chunk_134, __chunk_135, __chunk_136, __chunk_149, __chunk_152, __chunk_153, __chunk_154, __chunk_155, __chunk_156, __chunk_157, __chunk_158, __chunk_159, __chunk_160, __chunk_161, __chunk_190, __chunk_193, __chunk_194, __chunk_203, __chunk_204, __chunk_205, __chunk_206, __chunk_216, __chunk_217, __chunk_218, __chunk_219, __chunk_220, __chunk_221, __chunk_222, __chunk_223, __chunk_224, __chunk_225, __chunk_226, __chunk_227, __chunk_228, __chunk_229, __chunk_230, __chunk_231]));
export const __wasm_split_load___pipelines_route_view_5215267527785660091 = wrapAsyncCb(makeLoad(() => {
    const src = fetch(new URL("./split___pipelines_route_view_5215267527785660091.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, [__chunk_19, __chunk_20, __chunk_21, __chunk_26, __chunk_27, __chunk_28, __chunk_32, __chunk_33, __chunk_34, __chunk_50, __chunk_51, __chunk_52, __chunk_53, __chunk_83, __chunk_84, __chunk_85, __chunk_86, __chunk_87, __chunk_88, __chunk_89, __chunk_90, __chunk_91, __chunk_92, __chunk_105, __chunk_106, __chunk_107, __chunk_108, __chunk_109, __chunk_110, __chunk_111, __chunk_126, __chunk_127, __chunk_128, __chunk_129, __chunk_130, __chunk_131, __chunk_148, __chunk_149, __chunk_150, __chunk_151, __chunk_190, __chunk_191, __chunk_192, __chunk_203, __chunk_204, __chunk_205, __chunk_206, __chunk_207, __chunk_208, __chunk_209, __chunk_210, __chunk_211, __chunk_212, __chunk_213, __chunk_214, __chunk_215]));
export const __wasm_split_load___metrics_route_view_10763664316344963726 = wrapAsyncCb(makeLoad(() => {
    const src = fetch(new URL("./split___metrics_route_view_10763664316344963726.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, [__chunk_19, __chunk_20, __chunk_22, __chunk_23, __chunk_26, __chunk_27, __chunk_28, __chunk_32, __chunk_33, __chunk_34, __chunk_35, __chunk_36, __chunk_37, __chunk_38, __chunk_39, __chunk_40, __chunk_41, __chunk_42, __chunk_43, __chunk_48, __chunk_49, __chunk_75, __chunk_76, __chunk_83, __chunk_84, __chunk_85, __chunk_86, __chunk_87, __chunk_88, __chunk_89, __chunk_90, __chunk_91, __chunk_92, __chunk_93, __chunk_94, __chunk_95, __chunk_96, __chunk_97, __chunk_98, __chunk_99, __chunk_100, __chunk_101, __chunk_102, __chunk_103, __chunk_104, __chunk_126, __chunk_127, __chunk_128, __chunk_129, __chunk_130, __chunk_131, __chunk_132, __chunk_133, __chunk_134, __chunk_135, __chunk_136, __chunk_137, __chunk_138, __chunk_139, __chunk_140, __chunk_141, __chunk_142, __chunk_143, __chunk_144, __chunk_145, __chunk_146, __chunk_147, __chunk_181, __chunk_190, __chunk_191, __chunk_192, __chunk_193, __chunk_194, __chunk_195, __chunk_196, __chunk_197, __chunk_198, __chunk_199, __chunk_200, __chunk_201, __chunk_202]));
export const __wasm_split_load___logs_route_view_9974463303994218624 = wrapAsyncCb(makeLoad(() => {
    const src = fetch(new URL("./split___logs_route_view_9974463303994218624.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, [__chunk_19, __chunk_20, __chunk_21, __chunk_25, __chunk_26, __chunk_27, __chunk_28, __chunk_29, __chunk_30, __chunk_31, __chunk_74, __chunk_82, __chunk_83, __chunk_84, __chunk_85, __chunk_86, __chunk_87, __chunk_88, __chunk_89, __chunk_90, __chunk_91, __chunk_92, __chunk_93, __chunk_94, __chunk_95, __chunk_96, __chunk_97, __chunk_98, __chunk_99, __chunk_100, __chunk_101, __chunk_102, __chunk_103, __chunk_104, __chunk_105, __chunk_106, __chunk_107, __chunk_108, __chunk_109, __chunk_110, __chunk_111, __chunk_112, __chunk_113, __chunk_114, __chunk_115, __chunk_116, __chunk_117, __chunk_118, __chunk_119, __chunk_120, __chunk_121, __chunk_122, __chunk_123, __chunk_124, __chunk_125]));
export const __wasm_split_load___errors_route_view_3291641260738289357 = wrapAsyncCb(makeLoad(() => {
    const src = fetch(new URL("./split___errors_route_view_3291641260738289357.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, [__chunk_19, __chunk_20, __chunk_21, __chunk_22, __chunk_23, __chunk_24, __chunk_47, __chunk_74, __chunk_75, __chunk_76, __chunk_77, __chunk_78, __chunk_79, __chunk_80, __chunk_81, __chunk_181, __chunk_182, __chunk_183, __chunk_184, __chunk_185, __chunk_186, __chunk_187, __chunk_188, __chunk_189]));
export const __wasm_split_load___custom_route_view_6937619327317363136 = wrapAsyncCb(makeLoad(() => {
    const src = fetch(new URL("./split___custom_route_view_6937619327317363136.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, [__chunk_18, __chunk_19, __chunk_20, __chunk_21, __chunk_22, __chunk_23, __chunk_24, __chunk_25, __chunk_26, __chunk_27, __chunk_28, __chunk_29, __chunk_30, __chunk_31, __chunk_32, __chunk_33, __chunk_34, __chunk_35, __chunk_36, __chunk_37, __chunk_38, __chunk_39, __chunk_40, __chunk_41, __chunk_42, __chunk_43, __chunk_44, __chunk_45, __chunk_46, __chunk_74, __chunk_75, __chunk_76, __chunk_77, __chunk_78, __chunk_79, __chunk_80, __chunk_81, __chunk_82, __chunk_83, __chunk_84, __chunk_85, __chunk_86, __chunk_87, __chunk_88, __chunk_89, __chunk_90, __chunk_91, __chunk_92, __chunk_93, __chunk_94, __chunk_95, __chunk_96, __chunk_97, __chunk_98, __chunk_99, __chunk_100, __chunk_101, __chunk_102, __chunk_103, __chunk_104, __chunk_105, __chunk_106, __chunk_107, __chunk_108, __chunk_109, __chunk_110, __chunk_111, __chunk_112, __chunk_113, __chunk_114, __chunk_115, __chunk_116, __chunk_117, __chunk_118, __chunk_119, __chunk_120, __chunk_121, __chunk_122, __chunk_123, __chunk_124, __chunk_125, __chunk_126, __chunk_127, __chunk_128, __chunk_129, __chunk_130, __chunk_131, __chunk_132, __chunk_133, __chunk_134, __chunk_135, __chunk_136, __chunk_137, __chunk_138, __chunk_139, __chunk_140, __chunk_141, __chunk_142, __chunk_143, __chunk_144, __chunk_145, __chunk_146, __chunk_147, __chunk_148, __chunk_149, __chunk_150, __chunk_151, __chunk_152, __chunk_153, __chunk_154, __chunk_155, __chunk_156, __chunk_157, __chunk_158, __chunk_159, __chunk_160, __chunk_161, __chunk_162, __chunk_163, __chunk_164, __chunk_165, __chunk_166, __chunk_167, __chunk_168, __chunk_169, __chunk_170, __chunk_171, __chunk_172, __chunk_173, __chunk_174, __chunk_175, __chunk_176, __chunk_177, __chunk_178, __chunk_179, __chunk_180]));
export const __wasm_split_load___alerts_route_view_8144971667952139842 = wrapAsyncCb(makeLoad(() => {
    const src = fetch(new URL("./split___alerts_route_view_8144971667952139842.wasm", import.meta.url));
    return async (imports) => (WebAssembly.instantiateStreaming(src, imports));
}
, [__chunk_18, __chunk_19, __chunk_20, __chunk_21, __chunk_22, __chunk_23, __chunk_24, __chunk_25, __chunk_26, __chunk_27, __chunk_28, __chunk_29, __chunk_30, __chunk_31, __chunk_32, __chunk_33, __chunk_34, __chunk_35, __chunk_36, __chunk_37, __chunk_38, __chunk_39, __chunk_40, __chunk_41, __chunk_42, __chunk_43, __chunk_44, __chunk_45, __chunk_46, __chunk_47, __chunk_48, __chunk_49, __chunk_50, __chunk_51, __chunk_52, __chunk_53, __chunk_54, __chunk_55, __chunk_56, __chunk_57, __chunk_58, __chunk_59, __chunk_60, __chunk_61, __chunk_62, __chunk_63, __chunk_64, __chunk_65, __chunk_66, __chunk_67, __chunk_68, __chunk_69, __chunk_70, __chunk_71, __chunk_72, __chunk_73]));
