/* A stand-in for the driver's libnvidia-ml.so.1, for tests of envcheck/gpu.py's real ctypes path.
 *
 * It answers the NVML calls the probe makes from a text file named by $NVML_STANDIN_FILE:
 *   line 1: the driver version (e.g. 535.183.01)
 *   then one line per GPU: name|major|minor|total bytes|free bytes|uuid
 * $NVML_STANDIN_FAIL=FUNCTION:CODE makes that function return the NVML error CODE (e.g. nvmlInit_v2:18, what a
 * driver updated without a reboot answers), so the probe's handling of each failure is tested too.
 * Built by the test with gcc -shared -fPIC; nothing here is shipped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GPUS 16

typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct { char name[96], uuid[96]; int major, minor; unsigned long long total, free; } card_t;

static char driver[96];
static card_t cards[MAX_GPUS];
static unsigned int count;

static int failing(const char *function) {
    const char *spec = getenv("NVML_STANDIN_FAIL");
    size_t length = strlen(function);
    if (spec && strncmp(spec, function, length) == 0 && spec[length] == ':') return atoi(spec + length + 1);
    return 0;
}

static void copy_text(char *to, unsigned int size, const char *from) {
    strncpy(to, from, size - 1);
    to[size - 1] = '\0';
}

const char *nvmlErrorString(int code) {
    switch (code) {
    case 9: return "Driver Not Loaded";
    case 12: return "NVML Shared Library Not Found";
    case 18: return "Driver/library version mismatch";
    default: return "Unknown Error";
    }
}

int nvmlInit_v2(void) {
    int code = failing("nvmlInit_v2");
    if (code) return code;
    const char *path = getenv("NVML_STANDIN_FILE");
    FILE *file = path ? fopen(path, "r") : NULL;
    if (!file) return 9;
    char line[512];
    count = 0;
    if (fgets(line, sizeof line, file)) {
        line[strcspn(line, "\n")] = '\0';
        copy_text(driver, sizeof driver, line);
    }
    while (count < MAX_GPUS && fgets(line, sizeof line, file)) {
        card_t *card = &cards[count];
        if (sscanf(line, "%95[^|]|%d|%d|%llu|%llu|%95[^\n]", card->name, &card->major, &card->minor, &card->total,
                   &card->free, card->uuid) == 6)
            count++;
    }
    fclose(file);
    return 0;
}

int nvmlShutdown(void) { return 0; }

int nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    int code = failing("nvmlSystemGetDriverVersion");
    if (code) return code;
    copy_text(version, length, driver);
    return 0;
}

int nvmlDeviceGetCount_v2(unsigned int *found) {
    int code = failing("nvmlDeviceGetCount_v2");
    if (code) return code;
    *found = count;
    return 0;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned int index, void **handle) {
    if (index >= count) return 2; /* NVML_ERROR_INVALID_ARGUMENT */
    *handle = &cards[index];
    return 0;
}

int nvmlDeviceGetName(void *handle, char *name, unsigned int length) {
    copy_text(name, length, ((card_t *)handle)->name);
    return 0;
}

int nvmlDeviceGetUUID(void *handle, char *uuid, unsigned int length) {
    copy_text(uuid, length, ((card_t *)handle)->uuid);
    return 0;
}

int nvmlDeviceGetCudaComputeCapability(void *handle, int *major, int *minor) {
    int code = failing("nvmlDeviceGetCudaComputeCapability");
    if (code) return code;
    *major = ((card_t *)handle)->major;
    *minor = ((card_t *)handle)->minor;
    return 0;
}

int nvmlDeviceGetMemoryInfo(void *handle, nvmlMemory_t *memory) {
    card_t *card = (card_t *)handle;
    memory->total = card->total;
    memory->free = card->free;
    memory->used = card->total - card->free;
    return 0;
}
