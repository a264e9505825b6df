/*
 * rand.c: prints values that a nondeterministic machine would change from
 * run to run: bytes from /dev/urandom and getrandom(2), the real-time and
 * monotonic clocks, the TSC, and the outcome of a data race between two
 * threads. Under detvm all of them are functions of the seed.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/random.h>
#include <time.h>
#include <x86intrin.h>

static volatile long counter;

static void *racer(void *arg)
{
	long id = (long)arg;
	for (int i = 0; i < 200000; i++) {
		long v = counter; /* unsynchronised on purpose */
		counter = v + id;
	}
	return NULL;
}

int main(void)
{
	unsigned char buf[16];
	FILE *f = fopen("/dev/urandom", "rb");
	if (!f || fread(buf, 1, sizeof buf, f) != sizeof buf) {
		perror("/dev/urandom");
		return 1;
	}
	fclose(f);
	printf("urandom   ");
	for (size_t i = 0; i < sizeof buf; i++)
		printf("%02x", buf[i]);
	printf("\n");

	if (getrandom(buf, sizeof buf, 0) != sizeof buf) {
		perror("getrandom");
		return 1;
	}
	printf("getrandom ");
	for (size_t i = 0; i < sizeof buf; i++)
		printf("%02x", buf[i]);
	printf("\n");

	struct timespec rt, mono;
	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	printf("realtime  %lld.%09ld\n", (long long)rt.tv_sec, rt.tv_nsec);
	printf("monotonic %lld.%09ld\n", (long long)mono.tv_sec, mono.tv_nsec);
	printf("tsc       %llu\n", (unsigned long long)__rdtsc());

	pthread_t a, b;
	pthread_create(&a, NULL, racer, (void *)1);
	pthread_create(&b, NULL, racer, (void *)1000);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	printf("race      %ld\n", counter);
	return 0;
}
