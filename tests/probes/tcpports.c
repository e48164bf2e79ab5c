/*
 * tcpports: TCP on the run's loopback, for network.tcp_ports
 * (tests/escape/test_tcp_ports.py). Exit status: 0 it worked, 1..199 the errno
 * of the refused call, 200+ the probe went wrong.
 *
 *   bind PORT   bind 127.0.0.1:PORT
 *   pair PORT   listen on 127.0.0.1:PORT, connect to it, echo one message
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BAD 200

static struct sockaddr_in at(int port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return BAD;
    int port = atoi(argv[2]);
    struct sockaddr_in a = at(port);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0)
        return errno;
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0)
        return errno;
    if (!strcmp(argv[1], "bind"))
        return 0;
    if (strcmp(argv[1], "pair"))
        return BAD;
    if (listen(s, 1) != 0)
        return errno;
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0)
        return errno;
    if (connect(c, (struct sockaddr *)&a, sizeof a) != 0)
        return errno;
    int peer = accept(s, NULL, NULL);
    if (peer < 0)
        return errno;
    char buf[16] = {0};
    if (write(c, "ping", 4) != 4 || read(peer, buf, sizeof buf - 1) != 4)
        return BAD + 1;
    printf("%s\n", buf);
    return 0;
}
